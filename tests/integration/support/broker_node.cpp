#include "broker_node.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <rapidjson/document.h>

#include "amqp_client.hpp"

namespace workflowd::testing {

namespace {

constexpr std::chrono::seconds kStopTimeout(60);
constexpr std::chrono::seconds kCtlTimeout(60);
constexpr std::chrono::milliseconds kReadyPollInterval(100);
constexpr std::chrono::seconds kProbeTimeout(2);

// Ports the kernel reports free on 127.0.0.1, all different: each socket stays bound until all
// are chosen. Another process could take one before the node binds it; unlikely, and then the
// start fails loudly.
std::array<std::uint16_t, 3> FreeLoopbackPorts() {
  std::array<int, 3> sockets{-1, -1, -1};
  std::array<std::uint16_t, 3> ports{};
  std::string error;
  for (std::size_t i = 0; i < sockets.size() && error.empty(); ++i) {
    sockets[i] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (sockets[i] < 0 || ::bind(sockets[i], reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::getsockname(sockets[i], reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      error = std::strerror(errno);
    }
    ports[i] = ntohs(address.sin_port);
  }
  for (const int fd : sockets) {
    if (fd >= 0) ::close(fd);
  }
  if (!error.empty()) throw std::runtime_error("cannot find a free port on 127.0.0.1: " + error);
  return ports;
}

std::string UniqueNodeName() {
  static std::atomic<int> counter{0};
  return "wfdtest-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "@localhost";
}

void WriteFile(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

int OpenOrThrow(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  return fd;
}

// Closes a file descriptor at the end of its scope.
struct ScopedFd {
  int fd;
  ~ScopedFd() { ::close(fd); }
};

// fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: neither the node nor its epmd may
// outlive a test process that crashed or was killed by a ctest timeout. stdin is /dev/null,
// stdout and stderr are appended to `output`. argv[0] must be an absolute path.
pid_t SpawnTiedToThisThread(const std::vector<std::string>& argv, const Environment& env,
                            const std::filesystem::path& output) {
  // All set up before fork: the child may only make async-signal-safe calls.
  const ExecArgs args(argv, env);
  const ScopedFd input{OpenOrThrow("/dev/null", O_RDONLY)};
  const ScopedFd log{OpenOrThrow(output, O_WRONLY | O_CREAT | O_APPEND)};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);  // Ctrl-C in the terminal reaches the test, which then stops the node
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    ::dup2(input.fd, STDIN_FILENO);
    ::dup2(log.fd, STDOUT_FILENO);
    ::dup2(log.fd, STDERR_FILENO);
    ::close_range(STDERR_FILENO + 1, ~0U, 0);
    ::execve(args.argv()[0], args.argv(), args.envp());
    ::_exit(127);
  }
  return pid;
}

// The absolute path of a program in PATH (execve does not search).
std::string FindInPath(const std::string& program, std::string_view package) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const auto candidate = std::filesystem::path(dirs.substr(0, colon)) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
  }
  throw std::runtime_error(program + " is not in PATH; it comes with the " + std::string(package) +
                           " package (scripts/install-deps installs it)");
}

bool AcceptsConnections(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

BrokerNode::BrokerNode() : dir_("workflowd-broker"), node_name_(UniqueNodeName()) {
  if (!std::filesystem::exists(kServerScript)) {
    throw std::runtime_error(
        std::string("RabbitMQ is not installed: ") + kServerScript +
        " is missing. The integration tests run a private broker node; install it with "
        "`sudo apt-get install rabbitmq-server` or scripts/install-deps.");
  }
  const auto ports = FreeLoopbackPorts();
  amqp_port_ = ports[0];
  dist_port_ = ports[1];
  epmd_port_ = ports[2];
  WriteConfiguration();
}

BrokerNode::~BrokerNode() {
  // Destructors must not throw; report what went wrong where the test output shows it.
  try {
    if (IsRunning()) Stop();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "BrokerNode %s: %s\n", node_name_.c_str(), error.what());
  }
  try {
    StopEpmd();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "BrokerNode %s: stopping epmd: %s\n", node_name_.c_str(), error.what());
  }
}

void BrokerNode::WriteConfiguration() const {
  // No plugins: the management plugin would open fixed ports (15672) and slow the start.
  WriteFile(dir_.path() / "enabled_plugins", "[].\n");
  WriteFile(
      dir_.path() / "rabbitmq.conf",
      "# Written by the integration-test BrokerNode.\n"
      "# A test node holds little data: never block publishers on a small CI disk.\n"
      "disk_free_limit.absolute = 10MB\n"
      "# The node log goes to log/; console.log keeps what is printed before logging starts.\n"
      "log.console = false\n");
}

Environment BrokerNode::CtlEnvironment() const {
  // Nothing of a developer's own RabbitMQ or Erlang settings leaks into the test node.
  Environment env = InheritedEnvironment({"RABBITMQ_", "ERL_"});
  // The Erlang cookie is created in $HOME: the node and its rabbitmqctl share a private one.
  env["HOME"] = dir_.path();
  env["ERL_EPMD_PORT"] = std::to_string(epmd_port_);
  env["ERL_EPMD_ADDRESS"] = "127.0.0.1";
  // Every Erlang VM here (node, rabbitmqctl, and the one the node runs to ensure an epmd) uses
  // the epmd that StartEpmd() runs, and never starts a detached one that would outlive us.
  env["ERL_FLAGS"] = "-start_epmd false";
  // Unset, these would name files in /etc/rabbitmq; ours do not exist, so nothing is read.
  env["RABBITMQ_CONF_ENV_FILE"] = dir_.path() / "rabbitmq-env.conf";
  env["RABBITMQ_ADVANCED_CONFIG_FILE"] = dir_.path() / "advanced.config";
  // rabbitmqctl is an Erlang node too; by default it listens on one of 35672-35682, shared by
  // every rabbitmqctl on the machine. Port 0: the kernel picks a free one, on loopback only.
  env["RABBITMQ_CTL_DIST_PORT_MIN"] = "0";
  env["RABBITMQ_CTL_DIST_PORT_MAX"] = "0";
  env["RABBITMQ_CTL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}";
  return env;
}

Environment BrokerNode::ServerEnvironment() const {
  Environment env = CtlEnvironment();
  const auto& dir = dir_.path();
  env["RABBITMQ_NODENAME"] = node_name_;
  env["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
  env["RABBITMQ_NODE_PORT"] = std::to_string(amqp_port_);
  env["RABBITMQ_DIST_PORT"] = std::to_string(dist_port_);
  env["RABBITMQ_MNESIA_BASE"] = dir / "mnesia";
  env["RABBITMQ_LOG_BASE"] = dir / "log";
  env["RABBITMQ_CONFIG_FILE"] = dir / "rabbitmq";  // the server adds ".conf"
  env["RABBITMQ_ENABLED_PLUGINS_FILE"] = dir / "enabled_plugins";
  // With ALLOW_INPUT the script execs the VM instead of running it as a child of a shell, so our
  // child is beam.smp itself: signals and the death signal reach the broker. -noinput keeps the
  // Erlang shell off, as the script does otherwise; the distribution listens on loopback only.
  env["RABBITMQ_ALLOW_INPUT"] = "1";
  env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] =
      "-noinput -kernel inet_dist_use_interface {127,0,0,1}";
  return env;
}

void BrokerNode::Start(std::chrono::seconds timeout) {
  if (IsRunning()) {
    throw std::logic_error("BrokerNode::Start: " + node_name_ + " is already running");
  }
  if (epmd_pid_ <= 0) StartEpmd();
  pid_ = SpawnTiedToThisThread({kServerScript}, ServerEnvironment(), dir_.path() / "console.log");
  WaitUntilReady(timeout);
}

void BrokerNode::StartEpmd() {
  // Our own epmd in the foreground, rather than the one the node would start as a daemon: that
  // one would outlive a crashed test. The node finds this one on ERL_EPMD_PORT and uses it.
  const auto log = dir_.path() / "epmd.log";
  epmd_pid_ = SpawnTiedToThisThread({FindInPath("epmd", "erlang-base"), "-port",
                                     std::to_string(epmd_port_), "-address", "127.0.0.1"},
                                    CtlEnvironment(), log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!AcceptsConnections(epmd_port_)) {
    if (const auto status = WaitForExit(epmd_pid_, std::chrono::milliseconds(10))) {
      epmd_pid_ = -1;
      throw std::runtime_error("epmd on port " + std::to_string(epmd_port_) + " " +
                               DescribeWaitStatus(*status) + ":\n" + ReadFile(log));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      StopEpmd();
      throw std::runtime_error("epmd did not listen on port " + std::to_string(epmd_port_) +
                               " within 10 s:\n" + ReadFile(log));
    }
  }
}

void BrokerNode::WaitUntilReady(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  for (;;) {
    if (!IsRunning()) {
      throw std::runtime_error("RabbitMQ node " + node_name_ + " exited while starting; " +
                               LogTail());
    }
    // The AMQP listener opens last in the boot, so a login means the node serves clients.
    // A short timeout: what answers on the port may not be our node (another process took it).
    try {
      AmqpClient probe(amqp_port_, "/", kProbeTimeout);
      return;
    } catch (const std::runtime_error& error) {
      last_error = error.what();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (IsRunning()) Kill();
      throw std::runtime_error("RabbitMQ node " + node_name_ + " was not ready within " +
                               std::to_string(timeout.count()) + " s (last attempt: " + last_error +
                               "), so it was killed; " + LogTail());
    }
    std::this_thread::sleep_for(kReadyPollInterval);
  }
}

bool BrokerNode::IsRunning() {
  if (pid_ <= 0) return false;
  if (WaitForExit(pid_, std::chrono::milliseconds(0))) {
    pid_ = -1;
    return false;
  }
  return true;
}

void BrokerNode::Stop() {
  if (!IsRunning()) throw std::logic_error("BrokerNode::Stop: " + node_name_ + " is not running");
  // RabbitMQ handles SIGTERM as `rabbitmqctl stop` does, without starting a CLI VM (~1 s).
  ::kill(pid_, SIGTERM);
  const auto status = WaitForExit(pid_, kStopTimeout);
  if (!status) {
    ::kill(pid_, SIGKILL);
    WaitForExit(pid_, std::chrono::seconds(10));
    pid_ = -1;
    throw std::runtime_error("RabbitMQ node " + node_name_ + " did not stop within " +
                             std::to_string(kStopTimeout.count()) +
                             " s of SIGTERM, so it was killed; " + LogTail());
  }
  pid_ = -1;
  if (ShellExitCode(*status) != 0) {
    throw std::runtime_error("RabbitMQ node " + node_name_ + " " + DescribeWaitStatus(*status) +
                             " on SIGTERM; " + LogTail());
  }
}

void BrokerNode::Kill() {
  if (!IsRunning()) throw std::logic_error("BrokerNode::Kill: " + node_name_ + " is not running");
  ::kill(pid_, SIGKILL);
  if (!WaitForExit(pid_, std::chrono::seconds(10))) {
    throw std::runtime_error("RabbitMQ node " + node_name_ + " survived SIGKILL for 10 s");
  }
  pid_ = -1;
}

void BrokerNode::Restart() {
  if (IsRunning()) Stop();
  Start();
}

void BrokerNode::StopEpmd() {
  if (epmd_pid_ <= 0) return;
  ::kill(epmd_pid_, SIGKILL);  // it holds no data: nothing to shut down gracefully
  WaitForExit(epmd_pid_, std::chrono::seconds(10));
  epmd_pid_ = -1;
}

std::string BrokerNode::Ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kCtlScript, "-n", node_name_};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult result = RunCommand(argv, CtlEnvironment(), kCtlTimeout);
  if (result.exit_code != 0) {
    std::string command = "rabbitmqctl";
    for (const auto& arg : args) command += " " + arg;
    throw std::runtime_error("`" + command + "` on " + node_name_ + " failed with exit code " +
                             std::to_string(result.exit_code) + ":\n" + result.output);
  }
  return result.output;
}

void BrokerNode::AddVhost(const std::string& name) {
  Ctl({"add_vhost", name});
  Ctl({"set_permissions", "-p", name, "guest", ".*", ".*", ".*"});
}

void BrokerNode::DeleteVhost(const std::string& name) { Ctl({"delete_vhost", name}); }

std::map<std::string, std::size_t> BrokerNode::ListQueues(const std::string& vhost) {
  // JSON rather than the table: queue names may hold tabs or spaces.
  const std::string output =
      Ctl({"list_queues", "-p", vhost, "name", "messages", "--quiet", "--formatter", "json"});
  rapidjson::Document json;
  json.Parse(output.c_str());
  if (json.HasParseError() || !json.IsArray()) {
    throw std::runtime_error("rabbitmqctl list_queues -p " + vhost + " printed no JSON array:\n" +
                             output);
  }
  std::map<std::string, std::size_t> queues;
  for (const auto& queue : json.GetArray()) {
    if (!queue.IsObject() || !queue.HasMember("name") || !queue["name"].IsString() ||
        !queue.HasMember("messages") || !queue["messages"].IsUint64()) {
      throw std::runtime_error("rabbitmqctl list_queues -p " + vhost +
                               ": a queue without a name or a message count:\n" + output);
    }
    queues[queue["name"].GetString()] = queue["messages"].GetUint64();
  }
  return queues;
}

std::string BrokerNode::LogTail(std::size_t lines) const {
  const auto log = dir_.path() / "log" / (node_name_ + ".log");
  const auto console = dir_.path() / "console.log";
  return "last lines of " + log.string() + ":\n" + TailOfFile(log, lines) + "\nlast lines of " +
         console.string() + ":\n" + TailOfFile(console, lines);
}

}  // namespace workflowd::testing
