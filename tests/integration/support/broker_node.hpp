#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "subprocess.hpp"
#include "temp_dir.hpp"

namespace workflowd::testing {

// A private RabbitMQ node for integration and fault tests. It has its own node name, its own
// loopback ports (AMQP, Erlang distribution, and epmd, the Erlang port mapper) and its own data
// directory, so a test can stop, kill and restart it, and parallel test runs never meet. No
// plugin runs, so no other port is opened.
//
// The node and its epmd are tied to the thread that starts the node: if that thread or the
// whole test process dies without stopping them (a crash, a ctest timeout), the kernel kills them.
// Start it from the main thread, as Catch2 runs the tests.
//
// Not thread-safe: drive one BrokerNode from one thread.
class BrokerNode {
 public:
  // Debian's rabbitmq-server package; these scripts do not switch to the rabbitmq user.
  static constexpr const char* kServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
  static constexpr const char* kCtlScript = "/usr/lib/rabbitmq/bin/rabbitmqctl";

  // Picks the ports, names the node and writes its configuration; does not start it. Throws when
  // rabbitmq-server is not installed: the integration tests fail rather than skip without a broker.
  BrokerNode();
  // Stops the node (kills it if it does not stop), stops its epmd, removes its directory.
  ~BrokerNode();

  BrokerNode(const BrokerNode&) = delete;
  BrokerNode& operator=(const BrokerNode&) = delete;

  // Starts the node and returns once it accepts AMQP logins (~8 s). Throws, quoting the node's
  // logs, when it exits or is not ready within timeout.
  void Start(std::chrono::seconds timeout = std::chrono::seconds(120));
  // Graceful shutdown, as `rabbitmqctl stop`: durable queues and persistent messages are kept.
  // Throws if the node is not running or does not exit cleanly.
  void Stop();
  // SIGKILL, the crash of the broker, for fault tests: what the broker confirmed survives.
  // Throws if the node is not running.
  void Kill();
  // Stop() if running, then Start(), with the same ports and data.
  void Restart();
  bool IsRunning();

  std::uint16_t amqp_port() const { return amqp_port_; }
  const std::string& node_name() const { return node_name_; }
  const std::filesystem::path& directory() const { return dir_.path(); }

  // Vhost administration through rabbitmqctl; guest gets every permission on a vhost it adds.
  void AddVhost(const std::string& name);
  void DeleteVhost(const std::string& name);
  // Queue name -> messages (ready and unacknowledged) of every queue in vhost.
  std::map<std::string, std::size_t> ListQueues(const std::string& vhost);
  // Runs rabbitmqctl against this node, e.g. Ctl({"set_policy", ...}), and returns its output.
  // Throws, quoting the output, when it fails.
  std::string Ctl(const std::vector<std::string>& args);

  // The last lines of the node's log and console, for failure messages.
  std::string LogTail(std::size_t lines = 40) const;

 private:
  Environment ServerEnvironment() const;
  Environment CtlEnvironment() const;
  void WriteConfiguration() const;
  void WaitUntilReady(std::chrono::seconds timeout);
  void StartEpmd();
  void StopEpmd();

  TempDir dir_;
  std::string node_name_;
  std::uint16_t amqp_port_ = 0;
  std::uint16_t dist_port_ = 0;
  std::uint16_t epmd_port_ = 0;
  pid_t pid_ = -1;       // the beam.smp process while the node runs
  pid_t epmd_pid_ = -1;  // our epmd, from the first Start() to the destructor
};

}  // namespace workflowd::testing
