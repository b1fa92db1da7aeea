#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "subprocess.hpp"
#include "temp_dir.hpp"

namespace workflowd::testing {

// A program under test (workflowd, say) running in the background, its stdout and stderr
// collected in a log file that the test reads and waits on.
//
// Not thread-safe: drive one DaemonProcess from one thread.
class DaemonProcess {
 public:
  // Starts binary with args (argv[0] is the binary itself) in this process's environment plus
  // extra_env, stdin from /dev/null. Throws when the binary cannot be started.
  DaemonProcess(const std::filesystem::path& binary, const std::vector<std::string>& args,
                const Environment& extra_env = {});
  // Kills the process (SIGKILL) if it still runs, and removes its log directory.
  ~DaemonProcess();

  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Waits until the log holds text at least `occurrences` times (so a test can wait for a
  // second "connected" after a broker restart). Throws, quoting the log, on timeout or when the
  // process exits without having written it.
  void WaitForLog(std::string_view text, std::chrono::milliseconds timeout,
                  std::size_t occurrences = 1);

  // Sends a signal (SIGTERM, SIGHUP, ...). Throws if the process has already exited.
  void Signal(int signal);

  // Waits for the process to exit and returns its exit code, or 128 + the signal that killed
  // it, as a shell reports it. On timeout it kills the process and throws, quoting the log.
  int WaitExit(std::chrono::milliseconds timeout);

  // SIGKILL, the crash of the daemon, and waits for it to be gone.
  void Kill9();

  // Whether the process is still running (reaps it when it has exited).
  bool IsRunning();

  pid_t pid() const { return pid_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  // Everything the process wrote to stdout and stderr so far.
  std::string Log() const;

 private:
  // Records the exit status once the process is gone; true when it is.
  bool Reap(std::chrono::milliseconds timeout);
  std::string Describe() const;

  TempDir dir_;
  std::filesystem::path log_path_;
  std::string name_;
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
};

}  // namespace workflowd::testing
