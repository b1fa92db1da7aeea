#include "daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace workflowd::testing {

namespace {

constexpr std::chrono::milliseconds kLogPollInterval(20);
constexpr std::size_t kQuotedLogLines = 60;

std::size_t CountOccurrences(std::string_view haystack, std::string_view needle) {
  std::size_t count = 0;
  for (auto at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

}  // namespace

DaemonProcess::DaemonProcess(const std::filesystem::path& binary,
                             const std::vector<std::string>& args, const Environment& extra_env)
    : dir_("workflowd-daemon"), log_path_(dir_.path() / "output.log"), name_(binary.filename()) {
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("cannot create " + log_path_.string() + ": " + std::strerror(errno));
  }
  Environment env = InheritedEnvironment();
  for (const auto& [name, value] : extra_env) env[name] = value;
  std::vector<std::string> argv{binary.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  try {
    pid_ = Spawn(argv, env, log_fd);
  } catch (...) {
    ::close(log_fd);
    throw;
  }
  ::close(log_fd);
}

DaemonProcess::~DaemonProcess() {
  if (wait_status_) return;
  ::kill(pid_, SIGKILL);
  // SIGKILL cannot be ignored; the wait only reaps the process so that no zombie is left.
  if (!Reap(std::chrono::seconds(10))) {
    std::fprintf(stderr, "DaemonProcess: %s (pid %d) survived SIGKILL for 10 s\n", name_.c_str(),
                 static_cast<int>(pid_));
  }
}

bool DaemonProcess::Reap(std::chrono::milliseconds timeout) {
  if (!wait_status_) wait_status_ = WaitForExit(pid_, timeout);
  return wait_status_.has_value();
}

bool DaemonProcess::IsRunning() { return !Reap(std::chrono::milliseconds(0)); }

std::string DaemonProcess::Log() const { return ReadFile(log_path_); }

std::string DaemonProcess::Describe() const {
  std::string text = name_ + " (pid " + std::to_string(pid_) + ")";
  if (wait_status_) text += ", which " + DescribeWaitStatus(*wait_status_);
  return text + "; last lines of its output (" + log_path_.string() + "):\n" +
         TailOfFile(log_path_, kQuotedLogLines);
}

void DaemonProcess::WaitForLog(std::string_view text, std::chrono::milliseconds timeout,
                               std::size_t occurrences) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Read the status before the log: a process that wrote the text and then exited passes.
    const bool exited = !IsRunning();
    if (CountOccurrences(Log(), text) >= occurrences) return;
    if (exited || std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("waited " + std::to_string(timeout.count()) + " ms for \"" +
                               std::string(text) + "\" (x" + std::to_string(occurrences) +
                               ") in the output of " + Describe());
    }
    std::this_thread::sleep_for(kLogPollInterval);
  }
}

void DaemonProcess::Signal(int signal) {
  if (!IsRunning()) {
    throw std::runtime_error("cannot send signal " + std::to_string(signal) + " to " + Describe());
  }
  if (::kill(pid_, signal) != 0) {
    throw std::runtime_error("kill(" + std::to_string(pid_) + ", " + std::to_string(signal) +
                             "): " + std::strerror(errno));
  }
}

int DaemonProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (!Reap(timeout)) {
    ::kill(pid_, SIGKILL);
    Reap(std::chrono::seconds(10));
    throw std::runtime_error("did not exit within " + std::to_string(timeout.count()) +
                             " ms, so it was killed: " + Describe());
  }
  return ShellExitCode(*wait_status_);
}

void DaemonProcess::Kill9() {
  Signal(SIGKILL);
  if (!Reap(std::chrono::seconds(10))) {
    throw std::runtime_error("survived SIGKILL for 10 s: " + Describe());
  }
}

}  // namespace workflowd::testing
