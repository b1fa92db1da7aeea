// The metrics listener of a running workflowd, read over HTTP as Prometheus and a health check
// would: its counters move as messages flow, and /health follows the broker going and coming.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/amqp_client.hpp"
#include "support/broker_node.hpp"
#include "support/daemon_process.hpp"
#include "support/workflowd_harness.hpp"

using namespace workflowd::testing;
using namespace std::chrono_literals;
using Catch::Contains;

namespace {

constexpr std::string_view kConnected = "connected to 127.0.0.1:";
constexpr std::string_view kReconnecting = "; reconnecting in ";

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

// A port that was free on 127.0.0.1 a moment ago.
std::uint16_t FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    close(fd);
    Fail("picking a free port on 127.0.0.1");
  }
  close(fd);
  return ntohs(address.sin_port);
}

struct HttpResponse {
  int status = 0;
  std::string body;
};

// GET path from 127.0.0.1:port, as curl would.
HttpResponse Get(std::uint16_t port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  try {
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      Fail("GET " + path + ": connect to 127.0.0.1:" + std::to_string(port));
    }
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      Fail("GET " + path + ": send");
    }
    for (;;) {
      pollfd ready{fd, POLLIN, 0};
      if (poll(&ready, 1, 10000) != 1) throw std::runtime_error("GET " + path + ": no answer in 10 s");
      char buffer[16384];
      const ssize_t size = recv(fd, buffer, sizeof buffer, 0);
      if (size < 0) Fail("GET " + path + ": recv");
      if (size == 0) break;
      response.append(buffer, static_cast<std::size_t>(size));
    }
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
  INFO("GET " << path << ":\n" << response);
  REQUIRE(response.starts_with("HTTP/1.1 "));
  const std::size_t body = response.find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  return HttpResponse{std::stoi(response.substr(9, 3)), response.substr(body + 4)};
}

// The value of the sample `series` (name and labels, as written) in exposition text.
double Sample(const std::string& metrics, const std::string& series) {
  const std::string line_start = "\n" + series + " ";
  const std::size_t at = ("\n" + metrics).find(line_start);
  INFO(metrics);
  REQUIRE(at != std::string::npos);
  return std::stod(metrics.substr(at + series.size() + 1));
}

std::string Queue(const std::string& name, const std::string& queue) { return name + "{queue=\"" + queue + "\"}"; }

}  // namespace

TEST_CASE("the metrics endpoint counts the messages that flow, and /health follows the broker",
          "[integration][metrics]") {
  BrokerNode broker;
  broker.Start();
  DaemonOptions options;
  options.metrics_port = FreeLoopbackPort();
  const std::uint16_t port = options.metrics_port;
  DaemonConfig config(broker.amqp_port(), "/", options);
  // The incident of the failing message goes to ERROR: the others must not share it.
  std::vector<std::string> incidents = CreateIncidents(config, 8);
  const std::string failing_incident = incidents.back();
  incidents.pop_back();
  auto daemon = StartDaemon(config);
  INFO("daemon log:\n" << daemon->Log());
  CHECK_THAT(daemon->Log(), Contains("metrics: serving /metrics and /health on 127.0.0.1 port " +
                                     std::to_string(port)));

  HttpResponse health = Get(port, "/health");
  CHECK(health.status == 200);
  CHECK_THAT(health.body, Contains("\"status\":\"ok\""));
  const HttpResponse before = Get(port, "/metrics");
  REQUIRE(before.status == 200);
  CHECK(Sample(before.body, Queue("workflowd_deliveries_total", "pipeline_in")) == 0);
  CHECK(Sample(before.body, "workflowd_broker_connected") == 1);

  constexpr int kMessages = 300;
  {
    AmqpClient client(broker.amqp_port(), "/");
    for (int seq = 0; seq < kMessages; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));
    client.Publish("pipeline_in", "{\"IncidentID\":\"" + failing_incident + "\",\"seq\":-1,\"throw\":true}");
    client.Publish("pipeline_in", "not a JSON object");
    const Collected collected = CollectUntil(client, kMessages, 60s);
    REQUIRE(collected.seen.size() == static_cast<std::size_t>(kMessages));
  }
  // The failing message may still be on its way, and the inputs of relay_mid are acknowledged
  // after pipeline_out has their output: wait for the last run and the last settlement.
  std::string metrics;
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;;) {
    metrics = Get(port, "/metrics").body;
    const bool settled = Sample(metrics, Queue("workflowd_handler_runs_total", "pipeline_mid")) == kMessages + 1 &&
                         Sample(metrics, "workflowd_in_flight") == 0;
    if (settled || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  // Every input and the two odd ones came in; relay_in ran for all but the unreadable one.
  CHECK(Sample(metrics, Queue("workflowd_deliveries_total", "pipeline_in")) == kMessages + 2);
  CHECK(Sample(metrics, Queue("workflowd_handler_runs_total", "pipeline_in")) == kMessages + 1);
  CHECK(Sample(metrics, Queue("workflowd_dead_letters_total", "pipeline_in")) == 1);
  CHECK(Sample(metrics, Queue("workflowd_deliveries_total", "pipeline_mid")) == kMessages + 1);
  CHECK(Sample(metrics, Queue("workflowd_handler_runs_total", "pipeline_mid")) == kMessages + 1);
  CHECK(Sample(metrics, Queue("workflowd_handler_errors_total", "pipeline_mid")) == 1);
  CHECK(Sample(metrics, Queue("workflowd_handler_errors_total", "pipeline_in")) == 0);
  CHECK(Sample(metrics, Queue("workflowd_redeliveries_total", "pipeline_in")) == 0);
  CHECK(Sample(metrics, "workflowd_handler_duration_seconds_count{queue=\"pipeline_mid\"}") == kMessages + 1);
  CHECK(Sample(metrics, "workflowd_handler_duration_seconds_bucket{queue=\"pipeline_mid\",le=\"+Inf\"}") ==
        kMessages + 1);
  // At least one confirm group per run of relay_in and of relay_mid (the failing run sends its
  // incident's cleanup), and one for the dead letter.
  CHECK(Sample(metrics, "workflowd_publish_confirm_seconds_count") >= 2 * kMessages + 1);
  CHECK(Sample(metrics, "workflowd_in_flight") == 0);
  CHECK(Sample(metrics, "workflowd_reconnects_total") == 0);

  broker.Stop();
  daemon->WaitForLog(kReconnecting, 30s);
  health = Get(port, "/health");
  CHECK(health.status == 503);
  CHECK_THAT(health.body, Contains("\"status\":\"unavailable\""));
  CHECK_THAT(health.body, Contains("\"broker_connected\":false"));
  CHECK_THAT(health.body, Contains("not connected to the broker: "));
  CHECK(Sample(Get(port, "/metrics").body, "workflowd_broker_connected") == 0);

  broker.Start();
  daemon->WaitForLog(kConnected, 120s, 2);
  health = Get(port, "/health");
  CHECK(health.status == 200);
  metrics = Get(port, "/metrics").body;
  CHECK(Sample(metrics, "workflowd_broker_connected") == 1);
  CHECK(Sample(metrics, "workflowd_reconnects_total") == 1);

  daemon->Signal(SIGTERM);
  CHECK(daemon->WaitExit(30s) == 0);
}

TEST_CASE("a metrics port that is taken stops the daemon at start, naming it", "[integration][metrics]") {
  // Nothing listens on the broker's port: the daemon must fail before it tries to connect.
  BrokerNode broker;
  const int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(taken >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  REQUIRE(bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(listen(taken, 1) == 0);
  REQUIRE(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  DaemonOptions options;
  options.metrics_port = ntohs(address.sin_port);
  DaemonConfig config(broker.amqp_port(), "/", options);
  DaemonProcess daemon(WORKFLOWD_BINARY, {"--config", config.path().string()});
  const int status = daemon.WaitExit(30s);
  close(taken);
  INFO(daemon.Log());
  CHECK(status == 1);
  CHECK_THAT(daemon.Log(), Contains("metrics: cannot listen on 127.0.0.1:" + std::to_string(options.metrics_port) +
                                    ": Address already in use"));
}
