#include "systemd_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <spdlog/spdlog.h>

namespace workflowd {
namespace {

// STATUS=<status> on one line: a newline in the text would start another field.
std::string StatusField(std::string_view status) {
  std::string field = "STATUS=" + std::string(status);
  std::replace(field.begin(), field.end(), '\n', ' ');
  return field;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  std::uint64_t usec = 0;
  int enabled = sd_watchdog_enabled(0, &usec);
  if (enabled > 0) {
    watchdog_timeout_ = std::chrono::microseconds(usec);
  } else if (enabled < 0) {
    spdlog::warn("ignoring systemd's watchdog settings (WATCHDOG_USEC, WATCHDOG_PID): {}",
                 std::strerror(-enabled));
  }
}

void SystemdNotifier::Ready(std::string_view status) const {
  Send("READY=1\n" + StatusField(status));
}

void SystemdNotifier::Status(std::string_view status) const { Send(StatusField(status)); }

void SystemdNotifier::Watchdog() const { Send("WATCHDOG=1"); }

void SystemdNotifier::Stopping(std::string_view status) const {
  Send("STOPPING=1\n" + StatusField(status));
}

void SystemdNotifier::Send(const std::string& state) const {
  int sent = sd_notify(0, state.c_str());
  if (sent < 0) {
    std::string one_line = state;
    std::replace(one_line.begin(), one_line.end(), '\n', ' ');
    spdlog::warn("cannot tell systemd '{}' through NOTIFY_SOCKET: {}", one_line, std::strerror(-sent));
  }
}

}  // namespace workflowd
