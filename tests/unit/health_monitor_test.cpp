#include "health_monitor.hpp"

#include <catch2/catch.hpp>
#include <rapidjson/document.h>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Catch::Contains;
using workflowd::DaemonMetrics;
using workflowd::DispatcherEvents;
using workflowd::HealthMonitor;
using Clock = std::chrono::steady_clock;

namespace {

// The service behind the monitor: records what reaches it.
class RecordingEvents final : public DispatcherEvents {
 public:
  void OnConsuming(std::size_t queues) override { calls.push_back("consuming " + std::to_string(queues)); }
  void OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) override {
    calls.push_back("lost " + std::string(reason) + " " + std::to_string(retry_in.count()));
  }
  void OnStopping() override { calls.push_back("stopping"); }
  void OnLoopPass(Clock::time_point, std::size_t in_flight) override {
    calls.push_back("pass " + std::to_string(in_flight));
  }
  std::optional<std::uint16_t> OnReload() override {
    calls.push_back("reload");
    return 64;
  }

  std::vector<std::string> calls;
};

struct Monitored {
  RecordingEvents inner;
  DaemonMetrics metrics;
  HealthMonitor health{inner, metrics, 4, 300s};
};

// The report as JSON, checked to parse.
rapidjson::Document Json(const HealthMonitor::Report& report) {
  rapidjson::Document json;
  json.Parse(report.json.c_str(), report.json.size());
  INFO(report.json);
  REQUIRE_FALSE(json.HasParseError());
  REQUIRE(json.IsObject());
  return json;
}

std::vector<std::string> Problems(const rapidjson::Document& json) {
  std::vector<std::string> problems;
  for (const auto& problem : json["problems"].GetArray()) problems.emplace_back(problem.GetString());
  return problems;
}

}  // namespace

TEST_CASE("before the first connect the daemon is unavailable", "[health]") {
  Monitored m;
  const HealthMonitor::Report report = m.health.Check();
  CHECK_FALSE(report.healthy);
  const rapidjson::Document json = Json(report);
  CHECK(json["status"].GetString() == std::string("unavailable"));
  CHECK(json["broker_connected"].GetBool() == false);
  CHECK(Problems(json) == std::vector<std::string>{"not connected to the broker: not connected yet"});
}

TEST_CASE("connected with consumers and progressing: healthy", "[health]") {
  Monitored m;
  m.health.OnConsuming(3);
  m.health.OnLoopPass(Clock::now(), 2);
  const HealthMonitor::Report report = m.health.Check();
  CHECK(report.healthy);
  const rapidjson::Document json = Json(report);
  CHECK(json["status"].GetString() == std::string("ok"));
  CHECK(json["broker_connected"].GetBool() == true);
  CHECK(json["consumers"].GetUint64() == 3);
  CHECK(json["in_flight"].GetUint64() == 2);
  CHECK(json["io_progressing"].GetBool() == true);
  CHECK(json["workers_progressing"].GetBool() == true);
  CHECK(Problems(json).empty());
  CHECK(m.metrics.broker_connected.value() == 1);
  CHECK(m.metrics.in_flight.value() == 2);
  CHECK(m.metrics.reconnects.value() == 0);
}

TEST_CASE("a lost broker makes it unavailable with the reason; a reconnect is counted", "[health]") {
  Monitored m;
  m.health.OnConsuming(3);
  m.health.OnBrokerLost("connection reset\x01\xff by peer", 500ms);
  HealthMonitor::Report report = m.health.Check();
  CHECK_FALSE(report.healthy);
  rapidjson::Document json = Json(report);
  CHECK(json["consumers"].GetUint64() == 0);
  // Control and non-ASCII bytes are blanked: the report stays valid JSON whatever came in.
  CHECK(Problems(json) == std::vector<std::string>{"not connected to the broker: connection reset   by peer"});
  CHECK(m.metrics.broker_connected.value() == 0);

  m.health.OnConsuming(3);
  CHECK(m.health.Check().healthy);
  CHECK(m.metrics.reconnects.value() == 1);
  CHECK(m.metrics.broker_connected.value() == 1);
}

TEST_CASE("connected but with no queue consumed is unavailable", "[health]") {
  Monitored m;
  m.health.OnConsuming(0);
  const rapidjson::Document json = Json(m.health.Check());
  CHECK(Problems(json) == std::vector<std::string>{"no consumers attached"});
}

TEST_CASE("workers are stuck when more wait than there are workers and none finished for the stall timeout",
          "[health]") {
  Monitored m;
  m.health.OnConsuming(1);
  const Clock::time_point now = Clock::now();
  SECTION("as many in flight as workers, busy for long: long handlers, not stuck") {
    m.health.OnLoopPass(now - 400s, 4);
    CHECK(m.health.Check(now).healthy);
  }
  SECTION("more in flight than workers, the last finish recent: progressing") {
    m.health.OnLoopPass(now - 299s, 5);
    CHECK(m.health.Check(now).healthy);
  }
  SECTION("more in flight than workers and none finished for the stall timeout: stuck") {
    m.health.OnLoopPass(now - 301s, 5);
    const HealthMonitor::Report report = m.health.Check(now);
    CHECK_FALSE(report.healthy);
    const rapidjson::Document json = Json(report);
    CHECK(json["workers_progressing"].GetBool() == false);
    REQUIRE(Problems(json).size() == 1);
    CHECK_THAT(Problems(json)[0], Contains("no handler has finished for 301 s with 5 deliveries in flight"));
  }
}

TEST_CASE("an I/O loop that stopped turning is unavailable", "[health]") {
  Monitored m;
  m.health.OnConsuming(1);
  m.health.OnLoopPass(Clock::now(), 0);
  const Clock::time_point later = Clock::now() + HealthMonitor::kLoopStall + 2s;
  const rapidjson::Document json = Json(m.health.Check(later));
  CHECK(json["io_progressing"].GetBool() == false);
  REQUIRE(Problems(json).size() == 1);
  CHECK_THAT(Problems(json)[0], Contains("the I/O thread has not turned for 12 s"));
}

TEST_CASE("stopping is unavailable, so that a balancer takes the daemon out first", "[health]") {
  Monitored m;
  m.health.OnConsuming(2);
  m.health.OnStopping();
  const rapidjson::Document json = Json(m.health.Check());
  CHECK(json["consumers"].GetUint64() == 0);
  CHECK(Problems(json) ==
        std::vector<std::string>{"stopping: consumers are cancelled, in-flight deliveries drain"});
}

TEST_CASE("every event reaches the service behind the monitor unchanged", "[health]") {
  Monitored m;
  m.health.OnConsuming(2);
  m.health.OnLoopPass(Clock::now(), 1);
  m.health.OnBrokerLost("gone", 750ms);
  CHECK(m.health.OnReload() == std::optional<std::uint16_t>(64));
  m.health.OnStopping();
  CHECK(m.inner.calls ==
        std::vector<std::string>{"consuming 2", "pass 1", "lost gone 750", "reload", "stopping"});
}
