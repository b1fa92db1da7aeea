// workflowd end to end against a real broker: the daemon binary, the pipeline test plugin and
// the example plugins, driven through AMQP as any producer would.

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "support/amqp_client.hpp"
#include "support/daemon_process.hpp"
#include "support/shared_broker.hpp"
#include "support/temp_dir.hpp"
#include "support/workflowd_harness.hpp"

using namespace workflowd::testing;
using namespace std::chrono_literals;

namespace {

rapidjson::Document ParseBody(const Delivery& delivery) {
  rapidjson::Document document;
  document.Parse(delivery.body.data(), delivery.body.size());
  REQUIRE_FALSE(document.HasParseError());
  return document;
}

int Missing(const Collected& collected, int count) {
  return count - static_cast<int>(collected.seen.size());
}

}  // namespace

TEST_CASE("workflowd runs handlers on deliveries and publishes what they send", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("pipeline");
  DaemonOptions options;
  SECTION("every message published reaches the last stage, stamped by its handler") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    constexpr int kMessages = 500;
    for (int seq = 0; seq < kMessages; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));
    Collected collected = CollectUntil(client, kMessages, 30s);
    CHECK(Missing(collected, kMessages) == 0);
    CHECK(collected.duplicates == 0);

    client.Publish("pipeline_in", Numbered(kMessages, incidents));
    std::vector<Delivery> last = client.Consume("pipeline_out", 1, 10s);
    REQUIRE(last.size() == 1);
    rapidjson::Document body = ParseBody(last[0]);
    CHECK(std::string(body["originator"].GetString()) == "relay_mid");
    CHECK(std::string(body["MessageID"].GetString()).size() == 36);
    CHECK(last[0].message_id == body["MessageID"].GetString());
    CHECK(last[0].headers.at("src_tag") == "mid");
    CHECK(last[0].headers.at("dest_tag") == "out");
    CHECK(last[0].content_type == "application/json");
  }
  SECTION("handlers run on several workers at once") {
    options.workers = 4;
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    for (int seq = 0; seq < 8; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents, ",\"sleep_ms\":400"));
    Collected collected = CollectUntil(client, 8, 30s);
    CHECK(Missing(collected, 8) == 0);
    CHECK(collected.max_concurrency >= 3);
  }
  SECTION("a throwing handler's sends are dropped, its incident fails, and the daemon goes on") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    const std::vector<std::string> failing(incidents.begin(), incidents.begin() + 1);
    const std::vector<std::string> healthy(incidents.begin() + 1, incidents.end());
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    for (int seq = 0; seq < 40; ++seq) {
      client.Publish("pipeline_in", seq % 2 == 1 ? Numbered(seq, failing, ",\"throw\":true")
                                                 : Numbered(seq, healthy));
    }
    Collected collected = CollectUntil(client, 20, 30s);
    // The first throw ends the failing incident; its later messages are not handled at all.
    daemon->WaitForLog("failing, as asked", 10s);
    daemon->WaitForLog("not processed: incident " + failing[0] + " is ERROR", 10s);
    collected = CollectUntil(client, 21, 1s, collected);
    CHECK(collected.seen.size() == 20);
    CHECK(std::all_of(collected.seen.begin(), collected.seen.end(), [](int seq) { return seq % 2 == 0; }));
    CHECK_THAT(daemon->Log(), Catch::Contains("handler relay_mid on queue pipeline_mid failed for "
                                              "incident " + failing[0]));
    CHECK_THAT(daemon->Log(), Catch::Contains("failing, as asked; its 1 unsent message(s) are dropped"));
  }
  SECTION("FlushMessages in a handler publishes at once, even if the handler then throws") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    client.Publish("pipeline_in", Numbered(1, incidents, ",\"flush\":true"));
    Collected collected = CollectUntil(client, 2, 10s);
    CHECK(collected.seen == std::set<int>{1});
    daemon->WaitForLog("failing after a flush, as asked", 10s);
  }
  SECTION("hostile bodies go to the dead-letter queue with the reason, good ones go through") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    const std::map<std::string, std::string> poison = {
        {"not json at all", "body is not valid JSON"},
        {"[1,2,3]", "body is JSON but not an object"},
        {"{\"seq\":1}", "body has no IncidentID"},
        {"{\"IncidentID\":\"x\"} trailing", "body is not valid JSON"},
        {std::string("{\"IncidentID\":\"\xff\xfe\"}"), "body is not valid JSON"},
    };
    for (const auto& [body, reason] : poison) client.Publish("pipeline_in", body);
    client.Publish("pipeline_in", Numbered(7, incidents));
    std::vector<Delivery> dead = client.Consume("workflowd.dead-letter", poison.size(), 30s);
    REQUIRE(dead.size() == poison.size());
    for (const Delivery& delivery : dead) {
      INFO("dead letter: " << delivery.body.substr(0, 40));
      REQUIRE(poison.count(delivery.body) == 1);
      CHECK_THAT(delivery.headers.at("x-workflowd-reason"), Catch::Contains(poison.at(delivery.body)));
      CHECK(delivery.headers.at("x-workflowd-queue") == "pipeline_in");
    }
    CHECK(CollectUntil(client, 1, 10s).seen == std::set<int>{7});
    CHECK(daemon->IsRunning());
  }
  SECTION("a body over max_message_bytes is rejected unread, and the broker dead-letters it whole") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    const std::string huge = "{\"IncidentID\":\"big\",\"pad\":\"" + std::string(2u << 20, 'x') + "\"}";
    client.Publish("pipeline_in", huge);
    std::vector<Delivery> dead = client.Consume("workflowd.dead-letter", 1, 30s);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].body == huge);
    CHECK(dead[0].headers.at("x-first-death-reason") == "rejected");
    CHECK(dead[0].headers.at("x-first-death-queue") == "pipeline_in");
    daemon->WaitForLog("bytes exceeds max_message_bytes", 10s);
  }
  SECTION("SIGHUP re-reads the log level and prefetch; a broken file leaves the daemon as it was") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 1);
    auto daemon = StartDaemon(config);
    DaemonOptions changed = options;
    changed.prefetch = 32;
    changed.workers = 2;
    DaemonConfig reloaded(broker.amqp_port(), vhost, changed);
    std::string text = std::string(std::istreambuf_iterator<char>(std::ifstream(reloaded.path()).rdbuf()), {});
    // A new prefetch and log level apply at once; the other workers and store wait for a restart.
    std::ofstream(config.path()) << text << "log_level: debug\n";
    daemon->Signal(SIGHUP);
    daemon->WaitForLog("reload: prefetch 256 -> 32", 10s);
    daemon->WaitForLog("reload: log_level changed", 10s);
    daemon->WaitForLog("they take effect at the next restart", 10s);

    std::ofstream(config.path()) << "broker: [not, a, map]\n";
    daemon->Signal(SIGHUP);
    daemon->WaitForLog("reload refused, the running settings stay", 10s);
    AmqpClient client(broker.amqp_port(), vhost);
    client.Publish("pipeline_in", Numbered(1, incidents));
    CHECK(CollectUntil(client, 1, 10s).seen == std::set<int>{1});
    CHECK(daemon->IsRunning());
  }
  SECTION("a handler that sends to a queue that does not exist dead-letters its input") {
    DaemonConfig config(broker.amqp_port(), vhost, options);
    const std::vector<std::string> incidents = CreateIncidents(config, 7);
    auto daemon = StartDaemon(config);
    AmqpClient client(broker.amqp_port(), vhost);
    client.Publish("pipeline_mid", Numbered(3, incidents, ",\"nowhere\":true"),
                   {{"src_tag", "in"}, {"dest_tag", "mid"}});
    std::vector<Delivery> dead = client.Consume("workflowd.dead-letter", 1, 15s);
    REQUIRE(dead.size() == 1);
    CHECK_THAT(dead[0].headers.at("x-workflowd-reason"),
               Catch::Contains("queue 'pipeline_no_such_queue', which does not exist"));
    CHECK(dead[0].headers.at("x-workflowd-queue") == "pipeline_mid");
    // With the tags it came with, which a resend gives it back.
    CHECK(dead[0].headers.at("src_tag") == "in");
    CHECK(dead[0].headers.at("dest_tag") == "mid");
    // Only the crash-loop guard's dead letters name a count to clear.
    CHECK(dead[0].headers.count("x-workflowd-crash-count-key") == 0);
  }
}

TEST_CASE("SIGTERM under load loses no message, and a restarted daemon finishes the rest",
          "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("sigterm");
  DaemonConfig config(broker.amqp_port(), vhost);
  const std::vector<std::string> incidents = CreateIncidents(config, 7);
  DeclareQueues(config);
  AmqpClient client(broker.amqp_port(), vhost);
  constexpr int kMessages = 3000;
  for (int seq = 0; seq < kMessages; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));

  auto daemon = StartDaemon(config);
  while (client.MessageCount("pipeline_out") < 300) std::this_thread::sleep_for(10ms);
  daemon->Signal(SIGTERM);
  CHECK(daemon->WaitExit(40s) == 0);
  CHECK_THAT(daemon->Log(), Catch::Contains("workflowd stopped"));
  std::size_t done_before_restart = client.MessageCount("pipeline_out");
  CHECK(done_before_restart < static_cast<std::size_t>(kMessages));

  daemon = StartDaemon(config);
  Collected collected = CollectUntil(client, kMessages, 60s);
  WARN("SIGTERM: " << kMessages << " in, " << collected.seen.size() << " reached the end ("
                   << done_before_restart << " before the restart), "
                   << Missing(collected, kMessages) << " lost, " << collected.duplicates
                   << " duplicates");
  CHECK(Missing(collected, kMessages) == 0);
  CHECK(collected.duplicates == 0);
}

TEST_CASE("kill -9 under load loses no message", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("kill9");
  DaemonConfig config(broker.amqp_port(), vhost);
  const std::vector<std::string> incidents = CreateIncidents(config, 7);
  DeclareQueues(config);
  AmqpClient client(broker.amqp_port(), vhost);
  constexpr int kMessages = 3000;
  for (int seq = 0; seq < kMessages; ++seq) client.Publish("pipeline_in", Numbered(seq, incidents));

  // Kill while the daemon is busy: once the last stage has some hundreds more done.
  std::size_t killed_at[2];
  for (std::size_t& done : killed_at) {
    std::size_t target = client.MessageCount("pipeline_out") + 300 + std::rand() % 300;
    auto daemon = StartDaemon(config);
    while ((done = client.MessageCount("pipeline_out")) < target) std::this_thread::sleep_for(2ms);
    daemon->Kill9();
  }
  CHECK(killed_at[1] < static_cast<std::size_t>(kMessages));
  auto daemon = StartDaemon(config);
  Collected collected = CollectUntil(client, kMessages, 60s);
  WARN("kill -9 twice (at " << killed_at[0] << " and " << killed_at[1] << " done): " << kMessages
                            << " in, " << collected.seen.size() << " reached the end, "
                         << Missing(collected, kMessages) << " lost, " << collected.duplicates
                         << " duplicates");
  CHECK(Missing(collected, kMessages) == 0);
  // Only what was in flight at a kill can come twice: at most the prefetch window per kill.
  CHECK(collected.duplicates <= 2 * 2 * 256);
}

TEST_CASE("messages sent one at a time each go through both stages at once", "[integration]") {
  BrokerNode& broker = SharedBroker();
  std::string vhost = UniqueVhost("latency");
  DaemonConfig config(broker.amqp_port(), vhost);
  const std::vector<std::string> incidents = CreateIncidents(config, 7);
  auto daemon = StartDaemon(config);
  AmqpClient client(broker.amqp_port(), vhost);
  std::vector<double> milliseconds;
  for (int seq = 0; seq < 200; ++seq) {
    auto start = std::chrono::steady_clock::now();
    client.Publish("pipeline_in", Numbered(seq, incidents));
    REQUIRE(client.Consume("pipeline_out", 1, 5s).size() == 1);
    milliseconds.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(milliseconds.begin(), milliseconds.end());
  WARN("publish -> relay_in -> relay_mid -> consumer, 200 messages one at a time: p50 "
       << milliseconds[100] << " ms, p99 " << milliseconds[198] << " ms");
}

TEST_CASE("a password file that is not a small regular file stops workflowd and workflowctl at once with "
          "exit code 2, and one others can read loads with a warning",
          "[integration]") {
  TempDir dir("workflowd-password");
  const auto write_config = [&](const std::filesystem::path& password_file) {
    const std::filesystem::path config = dir.path() / "workflowd.yaml";
    std::ofstream(config) << "broker:\n  password_file: " << password_file.string()
                          << "\nplugins_dir: " << WORKFLOW_PIPELINE_PLUGIN_DIR << "\n";
    return config;
  };
  const std::filesystem::path fifo = dir.path() / "a-fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::filesystem::path& file : {std::filesystem::path("/dev/zero"), fifo}) {
    INFO("password_file: " << file);
    const std::filesystem::path config = write_config(file);
    DaemonProcess daemon(WORKFLOWD_BINARY, {"--config", config.string(), "--check-config"});
    CHECK(daemon.WaitExit(10s) == 2);
    CHECK_THAT(daemon.Log(), Catch::Contains("broker.password_file: the password file '" + file.string() +
                                             "' is a ") &&
                                 Catch::Contains(", not a regular file"));
    DaemonProcess ctl(WORKFLOWCTL_BINARY, {"--config", config.string(), "list"});
    CHECK(ctl.WaitExit(10s) == 2);
    CHECK_THAT(ctl.Log(), Catch::Contains("not a regular file"));
  }

  const std::filesystem::path password = dir.path() / "password";
  std::ofstream(password) << "guest\n";
  std::filesystem::permissions(password, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                             std::filesystem::perms::group_read |
                                             std::filesystem::perms::others_read);
  DaemonProcess daemon(WORKFLOWD_BINARY, {"--config", write_config(password).string(), "--check-config"});
  CHECK(daemon.WaitExit(10s) == 0);
  CHECK_THAT(daemon.Log(), Catch::Contains("the password file '" + password.string() +
                                           "' is readable by its group and others (mode 0644)"));
}

TEST_CASE("workflowctl dead-letters lists the dead-letter queue without emptying it, and resends one "
          "message to its queue once the broker confirmed it",
          "[integration]") {
  BrokerNode& broker = SharedBroker();
  const std::string vhost = UniqueVhost("dead-letters");
  constexpr const char* kDeadLetterQueue = "workflowd.dead-letter";
  DaemonOptions options;
  options.max_message_bytes = 1024;
  DaemonConfig config(broker.amqp_port(), vhost, options);
  const std::vector<std::string> incidents = CreateIncidents(config, 1);
  auto daemon = StartDaemon(config);
  AmqpClient client(broker.amqp_port(), vhost);

  // Dead-lettered by workflowd: not JSON (with a terminal escape), and no IncidentID.
  client.Publish("pipeline_in", "not json \x1b[31mat all");
  client.Publish("pipeline_in", R"({"MessageID":"no-incident-1","seq":1})");
  // Rejected for its size: the broker dead-letters it. Its body still fits a listing's read.
  const std::string big = Numbered(7, incidents, ",\"MessageID\":\"big-1\",\"pad\":\"" + std::string(2000, 'x') + "\"");
  client.Publish("pipeline_in", big);
  for (auto deadline = std::chrono::steady_clock::now() + 20s;
       client.MessageCount(kDeadLetterQueue) < 3 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(client.MessageCount(kDeadLetterQueue) == 3);

  int status = 0;
  std::string output;
  std::tie(status, output) = Workflowctl(config, {"dead-letters"});
  REQUIRE(status == 0);
  INFO("workflowctl dead-letters:\n" << output);
  CHECK_THAT(output, Catch::Contains("MESSAGE ID") && Catch::Contains("DEAD-LETTERED") &&
                         Catch::Contains("no-incident-1") && Catch::Contains("body has no IncidentID") &&
                         Catch::Contains("big-1") && Catch::Contains("dead-lettered by the broker: rejected") &&
                         Catch::Contains("not json  [31mat all") && Catch::Contains("pipeline_in") &&
                         Catch::Contains("3 dead letter(s) in queue workflowd.dead-letter"));
  CHECK(output.find('\x1b') == std::string::npos);
  // This year's time, to the second.
  CHECK_THAT(output, Catch::Matches("(.|\n)*20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:]{8}Z(.|\n)*"));
  CHECK(client.MessageCount(kDeadLetterQueue) == 3);

  std::tie(status, output) = Workflowctl(config, {"dead-letters", "--limit", "1"});
  REQUIRE(status == 0);
  CHECK_THAT(output, Catch::Contains("1 dead letter(s) in queue workflowd.dead-letter shown; there may be more"));

  std::tie(status, output) = Workflowctl(config, {"dead-letters", "resend", "no-such-id"});
  CHECK(status == 1);
  CHECK_THAT(output, Catch::Contains("no dead letter with message id 'no-such-id' in queue "
                                     "'workflowd.dead-letter' (3 message(s) looked at)"));
  std::tie(status, output) = Workflowctl(config, {"dead-letters", "resend"});
  CHECK(status == 2);
  CHECK_THAT(output, Catch::Contains("MESSAGE_ID is required"));
  CHECK(client.MessageCount(kDeadLetterQueue) == 3);

  // The operator raises the limit and sends the big message back: now it goes through.
  daemon->Signal(SIGTERM);
  REQUIRE(daemon->WaitExit(30s) == 0);
  std::string text = std::string(std::istreambuf_iterator<char>(std::ifstream(config.path()).rdbuf()), {});
  const std::string limit = "max_message_bytes: 1024\n";
  REQUIRE(text.find(limit) != std::string::npos);
  text.replace(text.find(limit), limit.size(), "max_message_bytes: 1048576\n");
  std::ofstream(config.path()) << text;
  daemon = StartDaemon(config);
  std::tie(status, output) = Workflowctl(config, {"dead-letters", "resend", "big-1"});
  REQUIRE(status == 0);
  CHECK_THAT(output, Catch::Contains("sent message big-1 back to queue pipeline_in"));
  CHECK(CollectUntil(client, 1, 20s).seen == std::set<int>{7});
  CHECK(client.MessageCount(kDeadLetterQueue) == 2);

  // The broker down: a clear error, not a hang.
  DaemonConfig unreachable(1, vhost, options);
  std::tie(status, output) = Workflowctl(unreachable, {"dead-letters"});
  CHECK(status == 1);
  CHECK_THAT(output, Catch::Contains("cannot connect to the broker at 127.0.0.1:1"));
}
