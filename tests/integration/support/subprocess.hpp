#pragma once

// Child processes for the test support code: environments, exec argument arrays, spawning,
// waiting, and running a command to completion. Shared by BrokerNode and DaemonProcess.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace workflowd::testing {

using Environment = std::map<std::string, std::string>;

// This process's environment, without the variables whose names start with one of
// drop_prefixes (so that, say, a developer's RABBITMQ_* settings cannot redirect a test node).
Environment InheritedEnvironment(std::initializer_list<std::string_view> drop_prefixes = {});

// The NULL-terminated argv and envp arrays that exec and posix_spawn take, over strings it owns.
// Build it before fork(): the child may only make async-signal-safe calls.
class ExecArgs {
 public:
  ExecArgs(const std::vector<std::string>& argv, const Environment& env);

  ExecArgs(const ExecArgs&) = delete;
  ExecArgs& operator=(const ExecArgs&) = delete;

  char* const* argv() const { return argv_.data(); }
  char* const* envp() const { return envp_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> argv_;
  std::vector<char*> envp_;
};

// Starts argv[0] (searched in PATH when it has no '/') with posix_spawn: stdin from /dev/null,
// stdout and stderr into output_fd, every other descriptor closed. Throws when it cannot start.
pid_t Spawn(const std::vector<std::string>& argv, const Environment& env, int output_fd);

// Waits up to timeout for the child pid to exit and reaps it. Returns its wait status, or
// nullopt when it is still running.
std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

// "exited with code 3", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// The exit code, or 128 + the signal number, as a shell reports it.
int ShellExitCode(int wait_status);

struct CommandResult {
  int exit_code = 0;   // as ShellExitCode
  std::string output;  // stdout and stderr, interleaved
};

// Runs a command to completion. Its output goes to an anonymous file rather than a pipe, so a
// daemon it leaves behind (epmd) cannot keep us waiting for end-of-file. A command still running
// after timeout is killed, and RunCommand throws with what it printed.
CommandResult RunCommand(const std::vector<std::string>& argv, const Environment& env,
                         std::chrono::milliseconds timeout);

// The whole file, or "" when it does not exist.
std::string ReadFile(const std::filesystem::path& file);

// The last `lines` lines of a text file, or "" when it does not exist.
std::string TailOfFile(const std::filesystem::path& file, std::size_t lines);

}  // namespace workflowd::testing
