#include "systemd_notifier.hpp"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using workflowd::SystemdNotifier;

namespace {

// Plays systemd's side: a datagram socket bound in a fresh directory, named by NOTIFY_SOCKET
// while it lives.
class NotifySocket {
 public:
  NotifySocket() {
    std::string dir = (fs::temp_directory_path() / "notify-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) Fail("mkdtemp");
    dir_ = dir;
    path_ = dir_ / "notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Fail("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) Fail("bind");
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd_);
    fs::remove_all(dir_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // The next datagram, waiting up to a second for it.
  std::string Receive() {
    pollfd ready{fd_, POLLIN, 0};
    if (poll(&ready, 1, 1000) != 1) throw std::runtime_error("no datagram on NOTIFY_SOCKET");
    char buffer[4096];
    ssize_t size = recv(fd_, buffer, sizeof buffer, 0);
    if (size < 0) Fail("recv");
    return std::string(buffer, static_cast<std::size_t>(size));
  }

  // Whether a datagram is waiting.
  bool Pending() {
    pollfd ready{fd_, POLLIN, 0};
    return poll(&ready, 1, 0) == 1;
  }

 private:
  [[noreturn]] static void Fail(const char* call) {
    throw std::runtime_error(std::string(call) + ": " + std::strerror(errno));
  }

  fs::path dir_;
  fs::path path_;
  int fd_ = -1;
};

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

}  // namespace

TEST_CASE("each notification is one datagram holding exactly its fields", "[systemd]") {
  NotifySocket systemd;
  SystemdNotifier notifier;

  notifier.Status("connecting to the broker at 127.0.0.1:5672");
  CHECK(systemd.Receive() == "STATUS=connecting to the broker at 127.0.0.1:5672");
  notifier.Ready("consuming 2 queue(s) from 127.0.0.1:5672");
  CHECK(systemd.Receive() == "READY=1\nSTATUS=consuming 2 queue(s) from 127.0.0.1:5672");
  notifier.Watchdog();
  CHECK(systemd.Receive() == "WATCHDOG=1");
  notifier.Stopping("waiting for 3 handler(s)");
  CHECK(systemd.Receive() == "STOPPING=1\nSTATUS=waiting for 3 handler(s)");
  CHECK_FALSE(systemd.Pending());
}

TEST_CASE("a newline in a status cannot add a field", "[systemd]") {
  NotifySocket systemd;
  SystemdNotifier notifier;

  notifier.Status("broker lost\nREADY=1");
  CHECK(systemd.Receive() == "STATUS=broker lost READY=1");
}

TEST_CASE("outside systemd, or with nobody listening, notifying does nothing and never throws",
          "[systemd]") {
  SECTION("no NOTIFY_SOCKET") {
    ScopedEnv no_socket("NOTIFY_SOCKET", nullptr);
    SystemdNotifier notifier;
    CHECK_NOTHROW(notifier.Ready("consuming"));
    CHECK_NOTHROW(notifier.Stopping("stopping"));
  }
  SECTION("NOTIFY_SOCKET names a socket that does not exist") {
    ScopedEnv gone("NOTIFY_SOCKET", "/nonexistent/workflowd-notify");
    SystemdNotifier notifier;
    CHECK_NOTHROW(notifier.Ready("consuming"));
  }
}

TEST_CASE("the watchdog timeout is systemd's WatchdogSec, for this process only", "[systemd]") {
  const std::string this_process = std::to_string(getpid());
  const std::string another_process = std::to_string(getpid() + 1);

  SECTION("for this process") {
    ScopedEnv usec("WATCHDOG_USEC", "5000000");
    ScopedEnv pid("WATCHDOG_PID", this_process.c_str());
    CHECK(SystemdNotifier().watchdog_timeout() == std::optional<std::chrono::microseconds>(5s));
  }
  SECTION("without WATCHDOG_PID, for whoever reads it") {
    ScopedEnv usec("WATCHDOG_USEC", "250000");
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    CHECK(SystemdNotifier().watchdog_timeout() == std::optional<std::chrono::microseconds>(250ms));
  }
  SECTION("for another process") {
    ScopedEnv usec("WATCHDOG_USEC", "5000000");
    ScopedEnv pid("WATCHDOG_PID", another_process.c_str());
    CHECK_FALSE(SystemdNotifier().watchdog_timeout().has_value());
  }
  SECTION("no watchdog") {
    ScopedEnv usec("WATCHDOG_USEC", nullptr);
    CHECK_FALSE(SystemdNotifier().watchdog_timeout().has_value());
  }
}
