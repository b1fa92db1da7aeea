// Fault tests: workflowd against a broker that goes away, comes back late, or feeds it hostile
// bodies. Each scenario streams numbered messages through the pipeline test plugin
// (pipeline_in -> relay_in -> pipeline_mid -> relay_mid -> pipeline_out), all published with
// publisher confirms before the fault, and counts what reaches pipeline_out: every input must
// arrive at least once ("lost" is an input that never did), duplicates are counted and bounded,
// and good messages must not be dead-lettered. Each scenario prints one line with its counts.
//
// A scenario that stops or kills the broker runs its own BrokerNode; the others use the shared one.

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "support/amqp_client.hpp"
#include "support/broker_node.hpp"
#include "support/daemon_process.hpp"
#include "support/shared_broker.hpp"
#include "support/workflowd_harness.hpp"

using namespace workflowd::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kDeadLetterQueue = "workflowd.dead-letter";
constexpr int kIncidents = 7;
// What workflowd logs when it has attached to a broker, and when it has lost one.
constexpr std::string_view kConnected = "connected to 127.0.0.1:";
constexpr std::string_view kReconnecting = "; reconnecting in ";

// Starts workflowd without waiting for it to reach a broker.
std::unique_ptr<DaemonProcess> LaunchDaemon(const DaemonConfig& config) {
  return std::make_unique<DaemonProcess>(
      WORKFLOWD_BINARY, std::vector<std::string>{"--config", config.path().string()});
}

std::size_t Occurrences(std::string_view text, std::string_view what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// A daemon that is gone fails the test with how it ended (128 + the signal that killed it).
bool CheckRunning(DaemonProcess& daemon) {
  if (daemon.IsRunning()) return true;
  FAIL_CHECK("workflowd is gone, exit status " << daemon.WaitExit(1s) << "; its log:\n"
                                               << daemon.Log());
  return false;
}

// What reached pipeline_out: how many copies of each seq.
using Arrivals = std::map<int, int>;

// Reads pipeline_out until every seq in [0, count) has arrived or timeout has passed, then
// until nothing more arrives for `quiet`, so that late duplicates are counted too.
Arrivals CollectArrivals(AmqpClient& client, int count, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds quiet = 2s) {
  Arrivals arrivals;
  int complete = 0;  // distinct seqs of [0, count) seen
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const bool all_in = complete == count;
    if (!all_in && std::chrono::steady_clock::now() >= deadline) break;
    std::vector<Delivery> batch = client.Consume("pipeline_out", 500, all_in ? quiet : 500ms);
    if (all_in && batch.empty()) break;
    for (const Delivery& delivery : batch) {
      rapidjson::Document body;
      body.Parse(delivery.body.data(), delivery.body.size());
      INFO("pipeline_out: " << delivery.body.substr(0, 200));
      REQUIRE((body.IsObject() && body.HasMember("seq") && body["seq"].IsInt()));
      const int seq = body["seq"].GetInt();
      if (++arrivals[seq] == 1 && seq >= 0 && seq < count) ++complete;
    }
  }
  return arrivals;
}

// The scenario's line in the test output (Catch2 WARN, so that it shows in a passing run), and
// the checks every scenario makes on its counts: nothing lost, nothing arrived that was not
// sent, at most max_duplicates extra copies in all and at most max_copies of any one message.
void Report(const std::string& scenario, int messages_in, const Arrivals& arrivals,
            std::size_t dead_lettered, int max_duplicates, int max_copies = 1) {
  int reached = 0;
  int duplicates = 0;
  int most_copies = 0;
  std::vector<int> unexpected;
  for (const auto& [seq, copies] : arrivals) {
    if (seq < 0 || seq >= messages_in) {
      unexpected.push_back(seq);
    } else {
      ++reached;
    }
    duplicates += copies - 1;
    most_copies = std::max(most_copies, copies);
  }
  const int lost = messages_in - reached;
  WARN(scenario << ": " << messages_in << " in, " << reached << " reached the end, " << lost
                << " lost, " << duplicates << " duplicates (at most " << most_copies
                << " copies of one), " << dead_lettered << " dead-lettered");
  CHECK(lost == 0);
  CHECK(unexpected.empty());
  CHECK(duplicates <= max_duplicates);
  CHECK(most_copies <= max_copies);
}

enum class BrokerFault { kStop, kKill };

// Publishes a backlog, starts the daemon on it, stops or kills the broker once part of it has
// gone through, restarts the broker, and checks that the same daemon process finishes the rest.
void RunThroughBrokerFault(BrokerFault fault, std::string_view scenario) {
  BrokerNode broker;
  broker.Start();
  const DaemonOptions options;
  DaemonConfig config(broker.amqp_port(), "/", options);
  const std::vector<std::string> incidents = CreateIncidents(config, kIncidents);
  DeclareQueues(config);

  // relay_mid sleeps 5 ms per message on 4 workers: the stream takes ~6 s, so the fault cuts it.
  constexpr int kMessages = 5000;
  {
    AmqpClient client(broker.amqp_port(), "/");
    for (int seq = 0; seq < kMessages; ++seq) {
      client.Publish("pipeline_in", Numbered(seq, incidents, ",\"sleep_ms\":5"));
    }
  }

  auto daemon = StartDaemon(config);
  std::size_t done_at_fault = 0;
  {
    AmqpClient client(broker.amqp_port(), "/");
    while ((done_at_fault = client.MessageCount("pipeline_out")) < kMessages / 10) {
      std::this_thread::sleep_for(5ms);
    }
  }  // the client's connection goes before the broker does
  if (fault == BrokerFault::kStop) {
    broker.Stop();
  } else {
    broker.Kill();
  }
  daemon->WaitForLog(kReconnecting, 30s);
  // Down for a few seconds more, so that the daemon retries against a dead port.
  std::this_thread::sleep_for(3s);
  REQUIRE(CheckRunning(*daemon));
  broker.Start();

  daemon->WaitForLog(kConnected, 120s, 2);
  AmqpClient client(broker.amqp_port(), "/");
  const Arrivals arrivals = CollectArrivals(client, kMessages, 180s);
  const std::size_t dead = client.MessageCount(kDeadLetterQueue);
  INFO("daemon log:\n" << daemon->Log());
  // One broker failure delivers the input of each of the two stages again at most once, so no
  // message reaches the end more than 3 times. A graceful stop keeps every acknowledgement, so
  // only the deliveries in flight come again: at most a prefetch window per stage. A SIGKILL
  // also loses the acknowledgements the broker had not yet written, so finished messages come
  // again too, as many as it had not written: there the per-message bound is the one that holds.
  const int max_duplicates =
      fault == BrokerFault::kStop ? 2 * static_cast<int>(options.prefetch) : 2 * kMessages;
  Report(std::string(scenario) + " (at " + std::to_string(done_at_fault) + " done)", kMessages,
         arrivals, dead, max_duplicates, 3);
  CHECK(done_at_fault < static_cast<std::size_t>(kMessages));
  CHECK(dead == 0);
  // The same process did it all: it never exited, and it logged the loss and the reconnect.
  CheckRunning(*daemon);
  const std::string log = daemon->Log();
  CHECK(Occurrences(log, kConnected) >= 2);
  CHECK_THAT(log, Catch::Contains(std::string(kReconnecting)));
}

}  // namespace

TEST_CASE("the broker stopped and restarted mid-stream: the daemon reconnects and loses nothing",
          "[integration][fault]") {
  RunThroughBrokerFault(BrokerFault::kStop, "broker stopped and restarted");
}

TEST_CASE("the broker killed (SIGKILL) mid-stream and restarted: the daemon loses nothing",
          "[integration][fault]") {
  RunThroughBrokerFault(BrokerFault::kKill, "broker killed and restarted");
}

TEST_CASE("a daemon started before its broker retries, then consumes", "[integration][fault]") {
  BrokerNode broker;  // its port is chosen, nothing listens on it yet
  DaemonConfig config(broker.amqp_port(), "/");
  const std::vector<std::string> incidents = CreateIncidents(config, kIncidents);
  const auto launched = std::chrono::steady_clock::now();
  auto daemon = LaunchDaemon(config);
  daemon->WaitForLog(kReconnecting, 15s);
  std::this_thread::sleep_until(launched + 5s);
  REQUIRE(CheckRunning(*daemon));
  CHECK_THAT(daemon->Log(), Catch::Contains("cannot connect to the broker at 127.0.0.1:" +
                                            std::to_string(broker.amqp_port())));
  broker.Start();
  daemon->WaitForLog(kConnected, 120s);

  constexpr int kMessages = 1000;
  AmqpClient client(broker.amqp_port(), "/");
  for (int seq = 0; seq < kMessages; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));
  const Arrivals arrivals = CollectArrivals(client, kMessages, 60s);
  const std::size_t dead = client.MessageCount(kDeadLetterQueue);
  const std::string log = daemon->Log();
  INFO("daemon log:\n" << log);
  Report("broker unreachable at start", kMessages, arrivals, dead, 0);
  CHECK(dead == 0);
  CheckRunning(*daemon);
  CHECK(Occurrences(log, kReconnecting) >= 2);
  CHECK(Occurrences(log, kConnected) == 1);
}

namespace {

// A hostile body and what the dead-letter queue must say about it: the x-workflowd-reason
// header contains reason; an empty reason means only "some reason".
struct Hostile {
  std::string category;
  std::string body;
  std::string reason;
};

std::vector<Hostile> HostileBodies(std::size_t max_message_bytes) {
  const std::string deep(100000, '[');
  std::vector<Hostile> bodies = {
      {"not JSON", "not json at all", "body is not valid JSON"},
      {"truncated JSON", "{\"IncidentID\":\"x\"", "body is not valid JSON"},
      {"trailing junk", "{\"IncidentID\":\"x\"} trailing", "body is not valid JSON"},
      {"empty body", "", "body is not valid JSON"},
      {"JSON array", "[{\"IncidentID\":\"x\"}]", "body is JSON but not an object"},
      {"JSON string", "\"IncidentID\"", "body is JSON but not an object"},
      {"JSON number", "42", "body is JSON but not an object"},
      {"JSON null", "null", "body is JSON but not an object"},
      {"no IncidentID", "{\"seq\":1}", "no IncidentID"},
      {"IncidentID a number", "{\"IncidentID\":17}", "no IncidentID"},
      {"IncidentID null", "{\"IncidentID\":null}", "no IncidentID"},
      {"IncidentID an object", "{\"IncidentID\":{\"id\":\"x\"}}", "no IncidentID"},
      {"IncidentID empty", "{\"IncidentID\":\"\"}", "no IncidentID"},
      {"invalid UTF-8", "{\"IncidentID\":\"\xff\xfe\"}", "body is not valid JSON"},
      {"overlong UTF-8", "{\"IncidentID\":\"\xc0\xaf\"}", "body is not valid JSON"},
      {"UTF-16 surrogate in UTF-8", "{\"IncidentID\":\"\xed\xa0\x80\"}", "body is not valid JSON"},
      {"NUL byte", std::string("{\"IncidentID\":\"a\0b\"}", 20), "NUL byte"},
      {"NUL after the object", std::string("{\"IncidentID\":\"a\"}\0junk", 23), "NUL byte"},
      {"100000 '[' unclosed", deep, "body is nested deeper than 512 levels"},
      {"100000 '[' closed, an array", deep + std::string(100000, ']'),
       "body is nested deeper than 512 levels"},
      {"100000-deep object without IncidentID",
       "{\"a\":" + deep + std::string(100000, ']') + "}", "body is nested deeper than 512 levels"},
  };
  // Random bytes from a fixed seed, so that a failure reproduces. 8 to 199 bytes each: long
  // enough to be distinct, and none of them a JSON object with a string IncidentID.
  std::mt19937 random(20240604);
  std::uniform_int_distribution<int> length(8, 199);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 200; ++i) {
    std::string body(static_cast<std::size_t>(length(random)), '\0');
    for (char& c : body) c = static_cast<char>(byte(random));
    bodies.push_back({"random bytes", std::move(body), ""});
  }
  for (const Hostile& hostile : bodies) REQUIRE(hostile.body.size() <= max_message_bytes);
  return bodies;
}

}  // namespace

TEST_CASE("hostile bodies mixed with good ones: each hostile one is dead-lettered with its reason, "
          "each good one completes",
          "[integration][fault]") {
  BrokerNode& broker = SharedBroker();
  const std::string vhost = UniqueVhost("hostile");
  // Low enough that the oversized body stays small, high enough for the 100000-deep ones.
  DaemonOptions options;
  options.max_message_bytes = 256 * 1024;
  DaemonConfig config(broker.amqp_port(), vhost, options);
  const std::vector<std::string> incidents = CreateIncidents(config, kIncidents);
  auto daemon = StartDaemon(config);
  AmqpClient client(broker.amqp_port(), vhost);

  const std::vector<Hostile> hostile = HostileBodies(options.max_message_bytes);
  // Over the limit: the daemon rejects it unread and the broker dead-letters it whole.
  const std::string oversized = "{\"IncidentID\":\"" + incidents[0] + "\",\"pad\":\"" +
                                std::string(options.max_message_bytes, 'x') + "\"}";
  int good = 0;
  for (const Hostile& body : hostile) {
    client.Publish("pipeline_in", Numbered(good++, incidents));
    client.Publish("pipeline_in", body.body);
  }
  client.Publish("pipeline_in", oversized);
  client.Publish("pipeline_in", Numbered(good++, incidents));
  const std::size_t sent_hostile = hostile.size() + 1;

  std::map<std::string, const Hostile*> expected;
  for (const Hostile& body : hostile) {
    REQUIRE(expected.emplace(body.body, &body).second);  // every hostile body is distinct
  }
  std::vector<Delivery> dead = client.Consume(kDeadLetterQueue, sent_hostile, 60s);
  std::vector<Delivery> extra = client.Consume(kDeadLetterQueue, 1, 2s);
  int random_dead = 0;
  bool oversized_seen = false;
  for (const Delivery& delivery : dead) {
    if (delivery.body == oversized) {
      oversized_seen = true;
      CHECK(delivery.headers.at("x-first-death-reason") == "rejected");
      CHECK(delivery.headers.at("x-first-death-queue") == "pipeline_in");
      continue;
    }
    auto found = expected.find(delivery.body);
    INFO("dead letter: " << delivery.body.substr(0, 60));
    REQUIRE(found != expected.end());
    const Hostile& body = *found->second;
    expected.erase(found);
    if (body.category == "random bytes") ++random_dead;
    INFO("category: " << body.category);
    REQUIRE(delivery.headers.count("x-workflowd-reason") == 1);
    CHECK_FALSE(delivery.headers.at("x-workflowd-reason").empty());
    CHECK_THAT(delivery.headers.at("x-workflowd-reason"), Catch::Contains(body.reason));
    CHECK(delivery.headers.at("x-workflowd-queue") == "pipeline_in");
  }
  for (const auto& [body, hostile_body] : expected) {
    FAIL_CHECK("not dead-lettered: " << hostile_body->category << ": " << body.substr(0, 60));
  }

  const Arrivals arrivals = CollectArrivals(client, good, 60s);
  Report("hostile bodies mixed in (" + std::to_string(sent_hostile) + " hostile, " +
             std::to_string(good) + " good)",
         good, arrivals, dead.size() + extra.size(), 0);
  CHECK(dead.size() == sent_hostile);
  CHECK(extra.empty());
  CHECK(oversized_seen);
  CHECK(random_dead == 200);
  daemon->WaitForLog("bytes exceeds max_message_bytes", 10s);
  CheckRunning(*daemon);
}

// Bodies that are well-formed objects with the IncidentID of a live incident, so that
// Message::Parse (RapidJSON 1.1.0) accepts them, yet which issue 4 (item 3) says must never
// reach a handler:
// - nested deeper than any sane limit: 200000 levels in 400 KB, under the default
//   max_message_bytes; a handler that sends or serialises it recurses once per level;
// - a string with a lone UTF-16 surrogate escape (\udc00): it decodes to bytes that are not
//   UTF-8, so the body the handler sends on is refused by the next stage;
// - a number beyond the range of a double (10e308, found by fuzz_message): it parses as
//   infinity, which JSON cannot write, so the body the handler sends on is not JSON.
// Each must be dead-lettered from the queue it arrived on, and a good message after it completes.
TEST_CASE("well-formed bodies the parser lets through but a handler must not get are dead-lettered",
          "[integration][fault]") {
  BrokerNode& broker = SharedBroker();
  const std::string vhost = UniqueVhost("parser-gaps");
  const DaemonOptions options;
  DaemonConfig config(broker.amqp_port(), vhost, options);
  const std::vector<std::string> incidents = CreateIncidents(config, 1);
  auto daemon = StartDaemon(config);
  AmqpClient client(broker.amqp_port(), vhost);

  std::string scenario;
  std::string body;
  SECTION("an object nested 200000 levels deep") {
    constexpr std::size_t kDepth = 200000;
    scenario = "object nested 200000 deep";
    body = "{\"IncidentID\":\"" + incidents[0] + "\",\"seq\":-1,\"nested\":" +
           std::string(kDepth, '[') + std::string(kDepth, ']') + "}";
  }
  SECTION("a lone UTF-16 surrogate escape in a string") {
    scenario = "lone surrogate escape";
    body = "{\"IncidentID\":\"" + incidents[0] + "\",\"seq\":-1,\"text\":\"a\\udc00b\"}";
  }
  SECTION("a number beyond the range of a double") {
    scenario = "number beyond double range";
    body = "{\"IncidentID\":\"" + incidents[0] + "\",\"seq\":-1,\"big\":10e308}";
  }
  REQUIRE(body.size() < options.max_message_bytes);
  client.Publish("pipeline_in", body);
  client.Publish("pipeline_in", Numbered(0, incidents));

  std::vector<Delivery> dead = client.Consume(kDeadLetterQueue, 1, 20s);
  CheckRunning(*daemon);
  REQUIRE(dead.size() == 1);
  INFO("x-workflowd-reason: " << dead[0].headers["x-workflowd-reason"]);
  CHECK(dead[0].headers["x-workflowd-queue"] == "pipeline_in");
  CHECK_FALSE(dead[0].headers["x-workflowd-reason"].empty());
  CHECK(dead[0].body == body);
  const Arrivals arrivals = CollectArrivals(client, 1, 20s);
  Report(scenario, 1, arrivals, dead.size(), 0);
  CheckRunning(*daemon);
}

// A handler that crashes the process (abort()) on one message, which a classic queue delivers
// again after every restart. The daemon is restarted after each crash, as systemd would: the
// message must run its handler max_deliveries times, then go to the dead-letter queue with its
// reason, while the messages around it complete. Sent back with workflowctl, it has
// max_deliveries tries again. One worker, so that only the poison message is in a handler when
// the process dies (any message running then counts a delivery too). The poison goes straight to
// pipeline_mid: through relay_in, a crash before relay_in's input is acknowledged would have
// relay_in send a second copy, under a new MessageID, which crashes max_deliveries times of its
// own.
TEST_CASE("a message whose handler crashes workflowd is dead-lettered after max_deliveries, the rest complete",
          "[integration][fault]") {
  BrokerNode& broker = SharedBroker();
  const std::string vhost = UniqueVhost("crash-loop");
  DaemonOptions options;
  options.workers = 1;
  options.max_deliveries = 3;
  DaemonConfig config(broker.amqp_port(), vhost, options);
  const std::vector<std::string> incidents = CreateIncidents(config, kIncidents);
  DeclareQueues(config);
  AmqpClient client(broker.amqp_port(), vhost);
  constexpr int kGood = 200;
  constexpr int kPoisonSeq = 1000000;
  for (int seq = 0; seq < kGood / 2; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));
  const std::string poison = Numbered(kPoisonSeq, incidents, ",\"MessageID\":\"poison-1\",\"abort\":true");
  client.Publish("pipeline_mid", poison, {{"src_tag", "in"}, {"dest_tag", "mid"}});
  for (int seq = kGood / 2; seq < kGood; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));

  // The crashes are expected: no core files for them.
  const rlimit no_core{0, 0};
  REQUIRE(setrlimit(RLIMIT_CORE, &no_core) == 0);
  std::unique_ptr<DaemonProcess> daemon;
  // Starts the daemon again after each crash until the poison is in the dead-letter queue; returns
  // the number of crashes.
  const auto restart_until_dead_lettered = [&] {
    int crashes = 0;
    for (int start = 0; start <= static_cast<int>(options.max_deliveries) + 1; ++start) {
      if (start > 0 || daemon == nullptr) daemon = StartDaemon(config);
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (daemon->IsRunning() && client.MessageCount(kDeadLetterQueue) == 0 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
      }
      if (daemon->IsRunning()) break;
      INFO("log of the daemon that ended:\n" << daemon->Log());
      REQUIRE(daemon->WaitExit(1s) == 128 + SIGABRT);
      ++crashes;
    }
    REQUIRE(CheckRunning(*daemon));
    return crashes;
  };
  const int crashes = restart_until_dead_lettered();
  CHECK(crashes == static_cast<int>(options.max_deliveries));
  daemon->WaitForLog("without its handler finishing", 5s);

  // Sent back, it starts from zero: max_deliveries crashes again, and the same reason.
  REQUIRE(client.MessageCount(kDeadLetterQueue) == 1);
  const auto [resend_status, resend_output] = Workflowctl(config, {"dead-letters", "resend", "poison-1"});
  INFO("workflowctl dead-letters resend poison-1:\n" << resend_output);
  REQUIRE(resend_status == 0);
  const int crashes_after_resend = restart_until_dead_lettered();
  CHECK(crashes_after_resend == static_cast<int>(options.max_deliveries));

  std::vector<Delivery> dead = client.Consume(kDeadLetterQueue, 2, 5s);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].body == poison);
  CHECK(dead[0].headers["x-workflowd-queue"] == "pipeline_mid");
  CHECK_THAT(dead[0].headers["x-workflowd-reason"],
             Catch::StartsWith("delivered 3 times without its handler finishing (max_deliveries 3)"));
  // What the resend needs: the id, the key of the count to clear, and the tags to send it with.
  CHECK(dead[0].headers["x-workflowd-message-id"] == "poison-1");
  CHECK(dead[0].headers["x-workflowd-crash-count-key"] == "poison-1");
  CHECK(dead[0].headers["src_tag"] == "in");
  CHECK(dead[0].headers["dest_tag"] == "mid");

  // Each crash can repeat what was in flight: at most a prefetch window per stage. Of one message,
  // relay_in runs at most once per process, so the copy it sends after crash k can be run by
  // relay_mid once more for each later crash: 1 + C, C, ..., 1 copies at the end for C crashes,
  // (C + 1)(C + 2) / 2 at most (a run under ThreadSanitizer, slower, saw 12 for 6 crashes).
  const int all_crashes = crashes + crashes_after_resend;
  const Arrivals arrivals = CollectArrivals(client, kGood, 60s);
  Report("handler crashing workflowd on one message (" + std::to_string(crashes) + " crashes, " +
             std::to_string(crashes_after_resend) + " more once sent back)",
         kGood, arrivals, dead.size(), all_crashes * 2 * static_cast<int>(options.prefetch),
         (all_crashes + 1) * (all_crashes + 2) / 2);
  CheckRunning(*daemon);
}
