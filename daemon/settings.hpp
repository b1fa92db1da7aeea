#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <variant>

namespace workflowd {

// Plain settings parsed from workflowd.yaml and the command line. Core classes take these,
// never YAML nodes.

struct BrokerSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  // Read from password_file at load time when the config names one.
  std::string password = "guest";
  // AMQP heartbeat; 0 turns heartbeats off.
  std::chrono::seconds heartbeat{30};
  // Unacknowledged deliveries the broker may hand this daemon at once.
  std::uint16_t prefetch = 256;
  // How long to wait for a TCP connect or an RPC reply before calling the broker lost.
  std::chrono::milliseconds connect_timeout{5000};

  bool operator==(const BrokerSettings&) const = default;
};

enum class QueueType { kClassic, kQuorum };

using QueueArgument = std::variant<std::int64_t, bool, std::string>;

// How a queue is declared. Queues are always durable; RabbitMQ 4.3 refuses transient ones.
struct QueueSettings {
  QueueType type = QueueType::kClassic;
  // Extra x-arguments (x-delivery-limit, x-max-length, ...): a YAML integer stays an integer,
  // true/false a boolean, anything else a string.
  std::map<std::string, QueueArgument> arguments;

  bool operator==(const QueueSettings&) const = default;
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarning, kError };

// What the message log keeps: every step of every message, only failures, or nothing.
enum class MessageLogLevel { kAll, kErrors, kOff };

struct StateSettings {
  // The SQLite database of incidents, the message log, persisted records and leases.
  std::filesystem::path path = "/var/lib/workflowd/state.db";
  MessageLogLevel message_log = MessageLogLevel::kAll;
  // How long an atomic handler holds its incident; a daemon that dies holding it blocks the
  // incident at most this long.
  std::chrono::seconds lease{300};
  // How long cleanup waits for an ended incident's messages in flight before it removes the
  // incident's records anyway.
  std::chrono::seconds cleanup_timeout{600};

  bool operator==(const StateSettings&) const = default;
};

// The HTTP listener for Prometheus (/metrics) and health checks (/health).
struct MetricsSettings {
  // An IPv4 or IPv6 address, not a host name. Loopback by default: the listener has no
  // authentication.
  std::string address = "127.0.0.1";
  // 0: no listener.
  std::uint16_t port = 0;
  // /health reports the workers stuck when deliveries wait for a worker and none has finished
  // for this long. Longer than the longest handler run.
  std::chrono::seconds stall_timeout{300};

  bool operator==(const MetricsSettings&) const = default;
};

// A kind of workflow that workflowctl can start: its first message goes to init_queue, and
// cancelling sends to shutdown_queue when there is one.
struct WorkflowKind {
  std::string init_queue;
  std::string shutdown_queue;

  bool operator==(const WorkflowKind&) const = default;
};

struct Settings {
  BrokerSettings broker;
  // Handler threads. 0 in the file means one per core.
  unsigned workers = 4;
  std::filesystem::path plugins_dir = "/usr/lib/workflowd/plugins";
  LogLevel log_level = LogLevel::kInfo;
  // A delivery larger than this is dead-lettered unread.
  std::size_t max_message_bytes = 1 << 20;
  // Where poison deliveries go, with a header saying why.
  std::string dead_letter_queue = "workflowd.dead-letter";
  // How often a message of a classic queue may be delivered without its handler finishing (the
  // process died while it ran) before it is dead-lettered instead of run again. Quorum queues
  // have the broker's x-delivery-limit for this.
  unsigned max_deliveries = 5;
  // How long SIGTERM waits for in-flight handlers before closing anyway.
  std::chrono::milliseconds shutdown_timeout{30000};
  // Declaration options per queue; a queue not listed is declared durable classic.
  std::map<std::string, QueueSettings> queues;
  StateSettings state;
  std::map<std::string, WorkflowKind> workflows;
  MetricsSettings metrics;

  bool operator==(const Settings&) const = default;
};

}  // namespace workflowd
