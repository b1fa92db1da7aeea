#include "subprocess.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace workflowd::testing {

namespace {

std::string JoinCommand(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) {
    if (!text.empty()) text += ' ';
    text += arg;
  }
  return text;
}

// Owns a posix_spawn_file_actions_t for the duration of one spawn.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

Environment InheritedEnvironment(std::initializer_list<std::string_view> drop_prefixes) {
  Environment env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    const std::string_view name = text.substr(0, equals);
    bool dropped = false;
    for (const auto prefix : drop_prefixes) dropped = dropped || name.starts_with(prefix);
    if (!dropped) env.emplace(std::string(name), std::string(text.substr(equals + 1)));
  }
  return env;
}

ExecArgs::ExecArgs(const std::vector<std::string>& argv, const Environment& env) {
  if (argv.empty()) throw std::invalid_argument("ExecArgs: empty argv");
  strings_.reserve(argv.size() + env.size());
  strings_.insert(strings_.end(), argv.begin(), argv.end());
  for (const auto& [name, value] : env) strings_.push_back(name + '=' + value);
  // The pointers are taken only now: strings_ no longer reallocates.
  for (std::size_t i = 0; i < strings_.size(); ++i) {
    (i < argv.size() ? argv_ : envp_).push_back(strings_[i].data());
  }
  argv_.push_back(nullptr);
  envp_.push_back(nullptr);
}

pid_t Spawn(const std::vector<std::string>& argv, const Environment& env, int output_fd) {
  const ExecArgs args(argv, env);
  FileActions actions;
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), output_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), output_fd, STDERR_FILENO);
  // The child must not hold our sockets, nor a pipe of ctest that would then wait for it.
  posix_spawn_file_actions_addclosefrom_np(actions.get(), STDERR_FILENO + 1);

  pid_t pid = 0;
  const int error =
      posix_spawnp(&pid, args.argv()[0], actions.get(), nullptr, args.argv(), args.envp());
  if (error != 0) {
    throw std::runtime_error("cannot start `" + JoinCommand(argv) + "`: " + std::strerror(error));
  }
  return pid;
}

std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    int status = 0;
    const pid_t result = ::waitpid(pid, &status, WNOHANG);
    if (result == pid) return status;
    if (result < 0 && errno != EINTR) {
      throw std::runtime_error("waitpid(" + std::to_string(pid) + "): " + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    return "was killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return "changed state (wait status " + std::to_string(wait_status) + ")";
}

int ShellExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

CommandResult RunCommand(const std::vector<std::string>& argv, const Environment& env,
                         std::chrono::milliseconds timeout) {
  const int output_fd = ::memfd_create("command-output", MFD_CLOEXEC);
  if (output_fd < 0) throw std::runtime_error(std::string("memfd_create: ") + std::strerror(errno));
  struct CloseOnExit {
    int fd;
    ~CloseOnExit() { ::close(fd); }
  } closer{output_fd};

  const pid_t pid = Spawn(argv, env, output_fd);
  std::optional<int> status = WaitForExit(pid, timeout);
  const bool timed_out = !status;
  if (timed_out) {
    ::kill(pid, SIGKILL);
    status = WaitForExit(pid, std::chrono::seconds(10));
  }

  CommandResult result;
  result.exit_code = status ? ShellExitCode(*status) : -1;
  ::lseek(output_fd, 0, SEEK_SET);
  char buffer[4096];
  for (ssize_t n; (n = ::read(output_fd, buffer, sizeof buffer)) > 0;) {
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  if (timed_out) {
    throw std::runtime_error("`" + JoinCommand(argv) + "` did not finish within " +
                             std::to_string(timeout.count()) + " ms and was killed; it printed:\n" +
                             result.output);
  }
  return result;
}

std::string ReadFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string TailOfFile(const std::filesystem::path& file, std::size_t lines) {
  const std::string text = ReadFile(file);
  std::size_t start = text.size();
  // Skip a final newline, then walk back over `lines` line breaks.
  if (start > 0 && text[start - 1] == '\n') --start;
  for (std::size_t found = 0; start > 0; --start) {
    if (text[start - 1] == '\n' && ++found == lines) break;
  }
  return text.substr(start);
}

}  // namespace workflowd::testing
