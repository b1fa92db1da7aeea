#pragma once

// What the tests that run workflowd share: a config file of their own (with its own state
// store), the daemon started and waited for, incidents made in its store, and the numbered
// messages that stream through the pipeline test plugin.
//
// Compiled into each daemon test target, whose compile definitions name the binaries:
// WORKFLOWD_BINARY, WORKFLOWCTL_BINARY, WORKFLOW_PIPELINE_PLUGIN_DIR.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "amqp_client.hpp"
#include "daemon_process.hpp"
#include "temp_dir.hpp"

namespace workflowd::testing {

struct DaemonOptions {
  std::filesystem::path plugins_dir = WORKFLOW_PIPELINE_PLUGIN_DIR;
  unsigned workers = 4;
  unsigned prefetch = 256;
  std::size_t max_message_bytes = 1 << 20;
  unsigned max_deliveries = 5;
  std::chrono::seconds lease{300};
  // Short, since a message sent to a queue nothing consumes (quicksort_result) stays SENT and so
  // "in flight": cleanup then removes the records only at this timeout.
  std::chrono::seconds cleanup_timeout{3};
  std::vector<std::string> extra_queues = {"pipeline_out"};
  // Workflow kinds: name -> init queue.
  std::map<std::string, std::string> workflows;
  // The metrics listener's port on 127.0.0.1; 0: none.
  std::uint16_t metrics_port = 0;
};

// A workflowd.yaml on 127.0.0.1:port and vhost, with a state store in its own directory.
class DaemonConfig {
 public:
  DaemonConfig(std::uint16_t port, const std::string& vhost, const DaemonOptions& options = {});
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& state_path() const { return state_path_; }

 private:
  TempDir dir_;
  std::filesystem::path path_;
  std::filesystem::path state_path_;
};

// Starts workflowd on config and waits until it consumes.
std::unique_ptr<DaemonProcess> StartDaemon(const DaemonConfig& config);
// Runs a daemon until it has declared its queues (with their dead-letter arguments), so that a
// backlog can be queued before the daemon under test starts.
void DeclareQueues(const DaemonConfig& config);
// Runs workflowctl with args on config; returns its exit code and output.
std::pair<int, std::string> Workflowctl(const DaemonConfig& config, std::vector<std::string> args);
// Creates incidents in the daemon's state store; returns their ids.
std::vector<std::string> CreateIncidents(const DaemonConfig& config, std::size_t count,
                                         const std::string& kind = "pipeline");

// {"IncidentID": one of incidents, "seq": seq, <extra>}.
std::string Numbered(int seq, const std::vector<std::string>& incidents, std::string_view extra = "");

// What reached pipeline_out: the distinct seqs, duplicates, and the highest max_concurrency.
struct Collected {
  std::set<int> seen;
  int duplicates = 0;
  int max_concurrency = 0;
};
// Reads pipeline_out until `count` distinct seqs arrived or timeout, adding to collected.
Collected CollectUntil(AmqpClient& client, int count, std::chrono::milliseconds timeout,
                       Collected collected = {});

}  // namespace workflowd::testing
