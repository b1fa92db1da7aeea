#include "workflowd_harness.hpp"

#include <signal.h>

#include <fstream>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "sqlite_state_store.hpp"

namespace workflowd::testing {

using namespace std::chrono_literals;

DaemonConfig::DaemonConfig(std::uint16_t port, const std::string& vhost, const DaemonOptions& options)
    : dir_("workflowd-config"), path_(dir_.path() / "workflowd.yaml"), state_path_(dir_.path() / "state.db") {
  std::ofstream file(path_);
  file << "broker:\n  host: 127.0.0.1\n  port: " << port << "\n  vhost: " << vhost
       << "\n  prefetch: " << options.prefetch << "\n  heartbeat: 10\n"
       << "workers: " << options.workers << "\nplugins_dir: " << options.plugins_dir.string()
       << "\nmax_message_bytes: " << options.max_message_bytes << "\nmax_deliveries: " << options.max_deliveries
       << "\nshutdown_timeout: 30\n"
       << "state:\n  path: " << state_path_.string() << "\n  lease: " << options.lease.count()
       << "\n  cleanup_timeout: " << options.cleanup_timeout.count() << "\n"
       << "queues:" << (options.extra_queues.empty() ? " {}\n" : "\n");
  for (const std::string& queue : options.extra_queues) file << "  " << queue << ": {}\n";
  if (!options.workflows.empty()) {
    file << "workflows:\n";
    for (const auto& [kind, init_queue] : options.workflows) {
      file << "  " << kind << ":\n    init_queue: " << init_queue << "\n";
    }
  }
  if (options.metrics_port != 0) file << "metrics:\n  port: " << options.metrics_port << "\n";
}

std::unique_ptr<DaemonProcess> StartDaemon(const DaemonConfig& config) {
  auto daemon = std::make_unique<DaemonProcess>(
      WORKFLOWD_BINARY, std::vector<std::string>{"--config", config.path().string()});
  daemon->WaitForLog("consuming", 30s);
  return daemon;
}

void DeclareQueues(const DaemonConfig& config) {
  auto daemon = StartDaemon(config);
  daemon->Signal(SIGTERM);
  REQUIRE(daemon->WaitExit(30s) == 0);
}

std::pair<int, std::string> Workflowctl(const DaemonConfig& config, std::vector<std::string> args) {
  args.insert(args.begin(), {"--config", config.path().string()});
  DaemonProcess ctl(WORKFLOWCTL_BINARY, args);
  const int status = ctl.WaitExit(30s);
  return {status, ctl.Log()};
}

std::vector<std::string> CreateIncidents(const DaemonConfig& config, std::size_t count, const std::string& kind) {
  auto store = OpenSqliteStateStore(config.state_path());
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < count; ++i) {
    ids.push_back(store->CreateIncident(kind, kind + "-" + std::to_string(i)).id);
  }
  return ids;
}

std::string Numbered(int seq, const std::vector<std::string>& incidents, std::string_view extra) {
  return "{\"IncidentID\":\"" + incidents[static_cast<std::size_t>(seq) % incidents.size()] +
         "\",\"seq\":" + std::to_string(seq) + std::string(extra) + "}";
}

Collected CollectUntil(AmqpClient& client, int count, std::chrono::milliseconds timeout, Collected collected) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (static_cast<int>(collected.seen.size()) < count && std::chrono::steady_clock::now() < deadline) {
    for (const Delivery& delivery : client.Consume("pipeline_out", 500, 500ms)) {
      rapidjson::Document body;
      body.Parse(delivery.body.data(), delivery.body.size());
      REQUIRE_FALSE(body.HasParseError());
      if (!collected.seen.insert(body["seq"].GetInt()).second) ++collected.duplicates;
      if (body.HasMember("max_concurrency")) {
        collected.max_concurrency = std::max(collected.max_concurrency, body["max_concurrency"].GetInt());
      }
    }
  }
  return collected;
}

}  // namespace workflowd::testing
