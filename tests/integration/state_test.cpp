// Incidents, the message log, Persist, atomic stages, retries and cleanup, end to end: workflowd
// and workflowctl against a real broker, checked through the state store the daemon writes.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "sqlite_state_store.hpp"
#include "support/amqp_client.hpp"
#include "support/daemon_process.hpp"
#include "support/shared_broker.hpp"
#include "support/workflowd_harness.hpp"

using namespace workflowd;
using namespace workflowd::testing;
using namespace std::chrono_literals;

namespace {

rapidjson::Document ParseJson(std::string_view text) {
  rapidjson::Document document;
  document.Parse(text.data(), text.size());
  REQUIRE_FALSE(document.HasParseError());
  return document;
}

// Polls until the incident reaches status (or fails the test after timeout).
Incident WaitForStatus(StateStore& store, const std::string& id, IncidentStatus status,
                       std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::optional<Incident> incident = store.FindIncident(id);
    REQUIRE(incident);
    if (incident->status == status || std::chrono::steady_clock::now() > deadline) {
      INFO("incident " << id << " is " << ToString(incident->status));
      REQUIRE(incident->status == status);
      return *incident;
    }
    std::this_thread::sleep_for(50ms);
  }
}

// Polls until pred(store) holds, or fails after timeout.
template <class Predicate>
void WaitUntil(const char* what, Predicate pred, std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    INFO("waiting for " << what);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(50ms);
  }
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The "end" records of a join stage: n, pid, start, end.
struct JoinRun {
  std::int64_t n, pid, start, end;
};
std::vector<JoinRun> JoinRuns(StateStore& store, const std::string& incident, const std::string& handler) {
  std::vector<JoinRun> runs;
  for (const std::string& record : store.PersistGet(incident, handler)) {
    rapidjson::Document json = ParseJson(record);
    if (std::string_view(json["event"].GetString()) != "end") continue;
    runs.push_back({json["n"].GetInt64(), json["pid"].GetInt64(), json["start"].GetInt64(), json["end"].GetInt64()});
  }
  return runs;
}

std::set<std::int64_t> DistinctN(const std::vector<JoinRun>& runs) {
  std::set<std::int64_t> n;
  for (const JoinRun& run : runs) n.insert(run.n);
  return n;
}

DaemonOptions StateStages() {
  return {.plugins_dir = WORKFLOW_STATE_PLUGIN_DIR, .extra_queues = {"state_out"}};
}

}  // namespace

TEST_CASE("the example workflows run from workflowctl start to a COMPLETE incident", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("examples");
  DaemonConfig config(broker.amqp_port(), vhost,
                      {.plugins_dir = WORKFLOW_EXAMPLE_PLUGINS_DIR,
                       .extra_queues = {"quicksort_result"},
                       .workflows = {{"simple", "A_queue"}, {"quicksort", "quicksort_init"}}});
  auto daemon = StartDaemon(config);
  auto store = OpenSqliteStateStore(config.state_path());

  SECTION("the seed example: A_handler, then B_handler, which completes the incident") {
    auto [status, output] = Workflowctl(config, {"start", "simple", "--name", "seed"});
    REQUIRE(status == 0);
    const std::string id = Trim(output);
    Incident incident = WaitForStatus(*store, id, IncidentStatus::kComplete);
    CHECK(incident.kind == "simple");
    CHECK(incident.name == "seed");
    daemon->WaitForLog("Stage B running for incident " + id + " (from A_handler)", 10s);
    WaitUntil("both messages logged COMPLETE", [&] {
      std::vector<MessageRecord> log = store->MessageLog(id);
      return log.size() == 2 && std::all_of(log.begin(), log.end(), [](const MessageRecord& record) {
               return record.status == MessageStatus::kComplete;
             });
    });
    std::vector<MessageRecord> log = store->MessageLog(id);
    CHECK(log[0].destination == "A_queue");
    CHECK(log[0].originator == "workflowctl");
    CHECK(log[1].destination == "B_queue");
    CHECK(log[1].originator == "A_handler");
  }
  SECTION("quicksort of 1,000 numbers ends COMPLETE with the numbers sorted, and its records cleaned") {
    std::mt19937 random(42);
    std::vector<std::int64_t> numbers(1000);
    for (std::int64_t& number : numbers) number = std::uniform_int_distribution<std::int64_t>(-5000, 5000)(random);
    std::string json = "{\"numbers\":[";
    for (std::size_t i = 0; i < numbers.size(); ++i) json += (i ? "," : "") + std::to_string(numbers[i]);
    json += "]}";
    auto [status, output] = Workflowctl(config, {"start", "quicksort", "--name", "sort-1000", "--json", json});
    REQUIRE(status == 0);
    const std::string id = Trim(output);

    AmqpClient client(broker.amqp_port(), vhost);
    std::vector<Delivery> results = client.Consume("quicksort_result", 1, 60s);
    REQUIRE(results.size() == 1);
    rapidjson::Document result = ParseJson(results[0].body);
    CHECK(std::string_view(result["IncidentID"].GetString()) == id);
    std::vector<std::int64_t> sorted;
    for (const auto& value : result["numbers"].GetArray()) sorted.push_back(value.GetInt64());
    std::sort(numbers.begin(), numbers.end());
    CHECK(sorted == numbers);
    WaitForStatus(*store, id, IncidentStatus::kComplete);
    // Once nothing of the incident is in flight, cleanup removes the merge's persisted pieces.
    WaitUntil("cleanup", [&] { return store->PersistGetAll(id).empty(); });
    daemon->WaitForLog("cleanup of incident " + id + ": persisted records and leases removed", 10s);
  }
  SECTION("workflowctl refuses what it cannot do, saying why") {
    auto [unknown_kind, unknown_output] = Workflowctl(config, {"start", "flood", "--name", "x"});
    CHECK(unknown_kind == 2);
    CHECK_THAT(unknown_output, Catch::Contains("no workflow kind 'flood' in the config's workflows section "
                                               "(known: quicksort, simple)"));
    auto [no_incident, no_incident_output] = Workflowctl(config, {"send", "A_queue", "--json", "{}"});
    CHECK(no_incident == 2);
    CHECK_THAT(no_incident_output, Catch::Contains("the message has no IncidentID"));
  }
}

TEST_CASE("incident states decide which messages are handled", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("incidents");
  DaemonConfig config(broker.amqp_port(), vhost, StateStages());
  auto daemon = StartDaemon(config);
  auto store = OpenSqliteStateStore(config.state_path());
  AmqpClient client(broker.amqp_port(), vhost);
  const std::string id = store->CreateIncident("test", "states").id;
  const std::string body = "{\"IncidentID\":\"" + id + "\"}";

  SECTION("a throwing stage ends its incident ERROR, drops its sends and stops the rest") {
    client.Publish("fail_stage", body);
    Incident incident = WaitForStatus(*store, id, IncidentStatus::kError);
    CHECK_THAT(incident.comment, Catch::Contains("handler fail_stage failed: the stage failed on purpose"));
    client.Publish("relay_stage", body);
    daemon->WaitForLog("not processed: incident " + id + " is ERROR", 10s);
    CHECK(client.Consume("state_out", 1, 1s).empty());
    WaitUntil("the log rows", [&] { return store->MessageLog(id).size() == 2; });
    std::vector<MessageRecord> log = store->MessageLog(id);
    std::map<std::string, MessageRecord> by_queue;
    for (const MessageRecord& record : log) by_queue[record.destination] = record;
    CHECK(by_queue["fail_stage"].status == MessageStatus::kError);
    CHECK(by_queue["fail_stage"].comment == "the stage failed on purpose");
    CHECK(by_queue["relay_stage"].status == MessageStatus::kNotProcessed);
  }
  SECTION("messages after Cancel are NOT_PROCESSED") {
    client.Publish("relay_stage", body);
    REQUIRE(client.Consume("state_out", 1, 10s).size() == 1);
    CHECK(store->FindIncident(id)->status == IncidentStatus::kActive);
    auto [status, output] = Workflowctl(config, {"cancel", id, "--reason", "the fire is out"});
    REQUIRE(status == 0);
    CHECK_THAT(output, Catch::Contains("CANCELLED"));
    CHECK(WaitForStatus(*store, id, IncidentStatus::kCancelled).comment == "the fire is out");
    client.Publish("relay_stage", body);
    daemon->WaitForLog("not processed: incident " + id + " is CANCELLED", 10s);
    CHECK(client.Consume("state_out", 1, 1s).empty());
  }
  SECTION("a handler completes its incident; completing it again changes nothing") {
    client.Publish("complete_stage", body);
    WaitForStatus(*store, id, IncidentStatus::kComplete);
    auto [status, output] = Workflowctl(config, {"cancel", id});
    CHECK(status == 0);
    CHECK_THAT(output, Catch::Contains("has already ended: COMPLETE"));
    CHECK(store->FindIncident(id)->status == IncidentStatus::kComplete);
  }
  SECTION("a retried stage succeeds on its third attempt, each waiting in the delay queue") {
    auto start = std::chrono::steady_clock::now();
    client.Publish("flaky_stage", body);
    REQUIRE(client.Consume("state_out", 1, 30s).size() == 1);
    // 100 ms, then 200 ms, which waits in the 250 ms delay queue.
    CHECK(std::chrono::steady_clock::now() - start >= 350ms);
    CHECK(store->PersistGet(id, "flaky_stage").size() == 3);
    CHECK(store->FindIncident(id)->status == IncidentStatus::kActive);
    CHECK_THAT(daemon->Log(), Catch::Contains("(attempt 2 of 3): not yet"));
  }
}

TEST_CASE("an atomic stage runs once at a time per incident, where the same stage without atomic races",
          "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("atomic");
  DaemonConfig config(broker.amqp_port(), vhost, StateStages());
  auto daemon = StartDaemon(config);
  auto store = OpenSqliteStateStore(config.state_path());
  AmqpClient client(broker.amqp_port(), vhost);
  const std::string id = store->CreateIncident("test", "atomic").id;
  const std::string body = "{\"IncidentID\":\"" + id + "\",\"sleep_ms\":50}";
  constexpr int kRuns = 8;
  for (int i = 0; i < kRuns; ++i) {
    client.Publish("join_atomic", body);
    client.Publish("join_racy", body);
  }
  WaitUntil("every run", [&] {
    return JoinRuns(*store, id, "join_atomic").size() == kRuns && JoinRuns(*store, id, "join_racy").size() == kRuns;
  }, 60s);
  // Atomic: each run saw every run before it, so the counts are 0..7.
  CHECK(DistinctN(JoinRuns(*store, id, "join_atomic")).size() == kRuns);
  // Without atomic, runs overlapped and read the same count: the test above would fail.
  CHECK(DistinctN(JoinRuns(*store, id, "join_racy")).size() < kRuns);
}

TEST_CASE("two daemons on one store never run an atomic stage of one incident at once", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("two-daemons");
  DaemonConfig config(broker.amqp_port(), vhost, StateStages());
  auto first = StartDaemon(config);
  auto second = StartDaemon(config);
  auto store = OpenSqliteStateStore(config.state_path());
  AmqpClient client(broker.amqp_port(), vhost);
  const std::string id = store->CreateIncident("test", "two daemons").id;
  constexpr int kRuns = 16;
  // Runs longer than a daemon waits for its own run (LocalAtomicRuns, 50 ms): shorter ones queue
  // up inside one daemon and hand the incident to each other, and the other daemon would never
  // contend for the store's lease.
  for (int i = 0; i < kRuns; ++i) {
    client.Publish("join_atomic", "{\"IncidentID\":\"" + id + "\",\"sleep_ms\":80}");
  }
  WaitUntil("every run", [&] { return JoinRuns(*store, id, "join_atomic").size() == kRuns; }, 60s);
  std::vector<JoinRun> runs = JoinRuns(*store, id, "join_atomic");
  std::sort(runs.begin(), runs.end(), [](const JoinRun& a, const JoinRun& b) { return a.start < b.start; });
  std::set<std::int64_t> pids;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    pids.insert(runs[i].pid);
    if (i > 0) CHECK(runs[i].start >= runs[i - 1].end);
  }
  CHECK(DistinctN(runs).size() == kRuns);
  CHECK(pids == std::set<std::int64_t>{first->pid(), second->pid()});
}

TEST_CASE("a daemon killed while holding a lease blocks the incident no longer than the lease",
          "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("lease");
  DaemonOptions options = StateStages();
  options.lease = 3s;
  DaemonConfig config(broker.amqp_port(), vhost, options);
  auto store = OpenSqliteStateStore(config.state_path());
  AmqpClient client(broker.amqp_port(), vhost);
  const std::string id = store->CreateIncident("test", "lease").id;

  auto holder = StartDaemon(config);
  client.Publish("join_atomic", "{\"IncidentID\":\"" + id + "\",\"hold_ms\":60000}");
  WaitUntil("the first run to hold the lease", [&] { return store->PersistGet(id, "join_atomic").size() == 1; });
  holder->Kill9();
  auto killed_at = std::chrono::steady_clock::now();

  auto successor = StartDaemon(config);
  WaitUntil("the redelivered run", [&] { return JoinRuns(*store, id, "join_atomic").size() == 1; }, 30s);
  auto recovered_after = std::chrono::steady_clock::now() - killed_at;
  WARN("lease of 3 s: the incident ran again "
       << std::chrono::duration_cast<std::chrono::milliseconds>(recovered_after).count()
       << " ms after the holder was killed");
  CHECK(recovered_after < 3s + 8s);
  // The lease held: the second run did not start before the first one's lease ran out.
  std::vector<std::string> records = store->PersistGet(id, "join_atomic");
  REQUIRE(records.size() == 3);
  std::int64_t first_start = ParseJson(records[0])["at"].GetInt64();
  std::int64_t second_start = ParseJson(records[1])["at"].GetInt64();
  CHECK(second_start - first_start >= 3000);
}
