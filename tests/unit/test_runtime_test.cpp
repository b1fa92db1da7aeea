// The SDK's test runtime (<workflow/testing.hpp>): the daemon's rules for deliveries, incidents,
// Persist, retries and plugin loading, kept in memory.
#include <workflow/testing.hpp>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using workflow::Handler;
using workflow::Message;
using workflow::testing::CallResult;
using workflow::testing::IncidentStatus;
using workflow::testing::Outcome;
using workflow::testing::TestRuntime;

std::filesystem::path CasePlugin(const std::string& name) {
  return std::filesystem::path(WORKFLOW_TEST_PLUGINS_DIR) / name / (name + ".so");
}

std::string RefusalOf(TestRuntime& runtime, const std::filesystem::path& plugin) {
  try {
    runtime.LoadPlugin(plugin);
  } catch (const workflow::Error& error) {
    return error.what();
  }
  FAIL("LoadPlugin(" << plugin << ") did not refuse the plugin");
  return {};
}

std::vector<std::string> Bodies(const std::vector<Message>& records) {
  std::vector<std::string> bodies;
  for (const Message& record : records) bodies.push_back(record.ToJson());
  return bodies;
}

Message Step(std::string_view incident, std::int64_t step) {
  Message message = Message::ForIncident(incident);
  message.Set("step", step);
  return message;
}

// Sends on to queue whatever it receives.
Handler Relay(std::string name, std::string queue) {
  return Handler{std::move(name), [queue](Message& message) { workflow::send(message, queue); }};
}

}  // namespace

TEST_CASE("One test runtime at a time: a second is refused while the first lives") {
  std::optional<TestRuntime> first(std::in_place);

  CHECK_THROWS_MATCHES(TestRuntime(), workflow::Error,
                       Catch::Message("workflow::testing::TestRuntime: another TestRuntime is alive in this "
                                      "process; libworkflow.so forwards to one runtime at a time, so destroy "
                                      "the first before making a second"));
  // The refused one did not uninstall the first.
  CHECK_FALSE(workflow::CreateIncident("still served", "test").empty());

  first.reset();
  CHECK_THROWS_WITH(workflow::CreateIncident("no runtime", "test"), Contains("needs a host"));
  TestRuntime second;
  CHECK_FALSE(workflow::CreateIncident("served again", "test").empty());
}

TEST_CASE("A second test run starts empty: nothing of the first run's state reaches it") {
  std::string incident;
  {
    TestRuntime first;
    incident = workflow::CreateIncident("first run", "test");
    workflow::RegisterHandler(Relay("relay", "out"), "in");
    first.Send("in", Message::ForIncident(incident));
    first.Send("out", Message::ForIncident(incident));
    first.Call(Handler{"keeper", [](Message& message) {
                         workflow::Persist::Put(message.incident_id(), Step(message.incident_id(), 1));
                       }},
               Message::ForIncident(incident));
    // Sent by the test outside any handler and never flushed: discarded with the first run.
    workflow::send(Message::ForIncident(incident), "unflushed");
    REQUIRE(first.Queued("in") == 1);
    REQUIRE(first.Persisted(incident, "keeper").size() == 1);
  }

  TestRuntime second;
  workflow::FlushMessages();

  CHECK_THROWS_WITH(second.Incident(incident), Contains("no incident " + incident));
  CHECK(second.Queued("in") == 0);
  CHECK(second.Queued("out") == 0);
  CHECK(second.Queued("unflushed") == 0);
  CHECK(second.Persisted(incident, "").empty());
  CHECK(second.RunUntilIdle().empty());
  // The first run's incident is unknown here, and its queue is free to register again.
  CHECK(second.Call(Handler{"late", [](Message&) {}}, Message::ForIncident(incident)).outcome ==
        Outcome::kNotProcessed);
  workflow::RegisterHandler(Relay("relay_again", "out"), "in");
  const std::string fresh = workflow::CreateIncident("second run", "test");
  second.Send("in", Message::ForIncident(fresh));
  std::vector<CallResult> results = second.RunUntilIdle();
  REQUIRE(results.size() == 1);
  CHECK(results[0].handler == "relay_again");
}

TEST_CASE("Messages the test sent and did not flush before a runtime existed are not published by it") {
  workflow::send(Message::ForIncident("no runtime yet"), "early");

  TestRuntime runtime;
  workflow::FlushMessages();

  CHECK(runtime.Queued("early") == 0);
}

TEST_CASE(
    "CreateIncident makes a PENDING incident with a fresh id; its first handled message makes it ACTIVE") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("first", "kind_a", "a comment");
  const std::string other = workflow::CreateIncident("second", "kind_a");

  CHECK(incident != other);
  CHECK(incident.size() == 36);
  const workflow::testing::IncidentRecord& record = runtime.Incident(incident);
  CHECK(record.id == incident);
  CHECK(record.name == "first");
  CHECK(record.kind == "kind_a");
  CHECK(record.comment == "a comment");
  CHECK(record.status == IncidentStatus::kPending);

  runtime.Call(Handler{"noop", [](Message&) {}}, Message::ForIncident(incident));
  CHECK(runtime.Incident(incident).status == IncidentStatus::kActive);
  CHECK(runtime.Incident(other).status == IncidentStatus::kPending);
  CHECK_THROWS_MATCHES(
      runtime.Incident("no-such-incident"), workflow::Error,
      Catch::Message("TestRuntime::Incident: no incident no-such-incident was created in this "
                     "runtime (with workflow::CreateIncident)"));
}

TEST_CASE("Call runs a handler in an invocation named after it and returns what it sent, in order") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("call", "test");
  Message message = Step(incident, 1);
  message.Set("MessageID", "the-delivered-one");
  auto stage = [](Message& received) {
    received.Set("seen", true);
    workflow::send(received, "first_queue", "stage", "first");
    workflow::send(received, "second_queue");
    workflow::send(received, "third_queue", "", "", "someone_else");
  };

  CallResult result = runtime.Call(Handler{"my_stage", stage}, std::move(message));

  CHECK(result.outcome == Outcome::kHandled);
  CHECK_FALSE(result.threw());
  CHECK(result.handler == "my_stage");
  CHECK(result.queue.empty());
  CHECK(result.message_id == "the-delivered-one");
  CHECK(result.incident_id == incident);
  CHECK(result.attempt == 1);
  CHECK(result.dropped == 0);
  REQUIRE(result.sent.size() == 3);
  CHECK(result.sent[0].queue == "first_queue");
  CHECK(result.sent[0].src_tag == "stage");
  CHECK(result.sent[0].dest_tag == "first");
  CHECK(result.sent[0].body.src_tag() == "stage");
  CHECK(result.sent[0].body.dest_tag() == "first");
  CHECK(result.sent[1].queue == "second_queue");
  CHECK(result.sent[2].queue == "third_queue");
  CHECK(result.sent[0].originator == "my_stage");
  CHECK(result.sent[1].body.originator() == "my_stage");
  CHECK(result.sent[2].originator == "someone_else");
  for (const workflow::testing::SentMessage& sent : result.sent) {
    CHECK(sent.body.incident_id() == incident);
    CHECK(sent.body.GetBool("seen"));
    CHECK(sent.body.message_id() == sent.message_id);
    CHECK(sent.message_id != "the-delivered-one");
  }
  // Published: each waits in its queue, for which no handler is registered.
  CHECK(runtime.Queued("first_queue") == 1);
  CHECK(runtime.Queued("second_queue") == 1);
  CHECK(runtime.Queued("third_queue") == 1);
}

TEST_CASE("FlushMessages in a handler publishes at once; the rest follows on its return, in order") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("flush", "test");
  std::size_t waiting_before_flush = 0, waiting_after_flush = 0;
  auto stage = [&](Message& message) {
    message.Set("step", 1);
    workflow::send(message, "out");
    waiting_before_flush = runtime.Queued("out");
    workflow::FlushMessages();
    waiting_after_flush = runtime.Queued("out");
    message.Set("step", 2);
    workflow::send(message, "out");
  };

  CallResult result = runtime.Call(Handler{"flusher", stage}, Message::ForIncident(incident));

  CHECK(waiting_before_flush == 0);
  CHECK(waiting_after_flush == 1);
  REQUIRE(result.sent.size() == 2);
  CHECK(result.sent[0].body.GetInt("step") == 1);
  CHECK(result.sent[1].body.GetInt("step") == 2);
  CHECK(result.sent[0].message_id != result.sent[1].message_id);
  std::vector<workflow::testing::SentMessage> out = runtime.Take("out");
  REQUIRE(out.size() == 2);
  CHECK(out[0].message_id == result.sent[0].message_id);
  CHECK(out[1].message_id == result.sent[1].message_id);
}

TEST_CASE("A handler that throws has its unflushed sends dropped and its incident set to ERROR") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("failing", "test");
  auto failing = [](Message& message) {
    workflow::send(message, "flushed_queue");
    workflow::FlushMessages();
    workflow::send(message, "dropped_queue");
    workflow::send(message, "dropped_queue");
    throw std::runtime_error("the stage failed");
  };

  CallResult result = runtime.Call(Handler{"failing", failing}, Message::ForIncident(incident));

  CHECK(result.outcome == Outcome::kThrew);
  CHECK(result.threw());
  CHECK(result.reason == "the stage failed");
  CHECK(result.dropped == 2);
  // What it flushed before it threw was published, as the daemon publishes it.
  REQUIRE(result.sent.size() == 1);
  CHECK(result.sent[0].queue == "flushed_queue");
  CHECK(runtime.Queued("flushed_queue") == 1);
  CHECK(runtime.Queued("dropped_queue") == 0);
  CHECK(runtime.Incident(incident).status == IncidentStatus::kError);
  CHECK(runtime.Incident(incident).reason == "handler failing failed: the stage failed");
}

TEST_CASE("A handler that throws something other than a std::exception fails as well") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("failing", "test");

  CallResult result =
      runtime.Call(Handler{"throws_int", [](Message&) { throw 42; }}, Message::ForIncident(incident));

  CHECK(result.outcome == Outcome::kThrew);
  CHECK(result.reason == "a non-standard exception");
  CHECK(runtime.Incident(incident).reason == "handler throws_int failed: a non-standard exception");
}

TEST_CASE("Persist keeps records per (incident, handler), in the order they were put") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("persist", "test");
  const std::string other = workflow::CreateIncident("persist", "test");
  std::vector<std::string> seen_by_reader, seen_all;
  auto writer = [](Message& message) {
    for (std::int64_t step : {3, 1, 2})
      workflow::Persist::Put(message.incident_id(), Step(message.incident_id(), step));
  };
  auto reader = [&](Message& message) {
    workflow::Persist::Put(message.incident_id(), Step(message.incident_id(), 9));
    seen_by_reader = Bodies(workflow::Persist::Get(message.incident_id()));
    seen_all = Bodies(workflow::Persist::GetAll(message.incident_id()));
  };

  runtime.Call(Handler{"writer", writer}, Message::ForIncident(incident));
  runtime.Call(Handler{"writer", writer}, Message::ForIncident(other));
  runtime.Call(Handler{"reader", reader}, Message::ForIncident(incident));

  const std::string step3 = Step(incident, 3).ToJson(), step1 = Step(incident, 1).ToJson(),
                    step2 = Step(incident, 2).ToJson(), step9 = Step(incident, 9).ToJson();
  CHECK(Bodies(runtime.Persisted(incident, "writer")) == std::vector{step3, step1, step2});
  CHECK(Bodies(runtime.Persisted(incident, "reader")) == std::vector{step9});
  CHECK(Bodies(runtime.Persisted(incident, "")) == std::vector{step3, step1, step2, step9});
  CHECK(seen_by_reader == std::vector{step9});
  CHECK(seen_all == std::vector{step3, step1, step2, step9});
  CHECK(runtime.Persisted(other, "writer").size() == 3);
  CHECK(runtime.Persisted(other, "reader").empty());
  CHECK(runtime.Persisted("no-such-incident", "").empty());
}

TEST_CASE("Complete and Cancel end an incident; its later messages are not processed") {
  TestRuntime runtime;
  const std::string completed = workflow::CreateIncident("completed", "test");
  const std::string cancelled = workflow::CreateIncident("cancelled", "test");
  bool ran = false;
  const Handler marker{"marker", [&](Message&) { ran = true; }};

  CallResult complete =
      runtime.Call(Handler{"completes", [](Message& m) { workflow::Complete(m.incident_id()); }},
                   Message::ForIncident(completed));
  workflow::Cancel(cancelled, "the operator changed their mind");
  // Ending it again changes nothing (a warning is printed).
  workflow::Cancel(completed, "too late");
  workflow::Complete(cancelled);

  CHECK(complete.outcome == Outcome::kHandled);
  // The daemon's own cleanup stage is no send of the handler's.
  CHECK(complete.sent.empty());
  CHECK(runtime.Queued("_Cleanup") == 0);
  CHECK(runtime.Incident(completed).status == IncidentStatus::kComplete);
  CHECK(runtime.Incident(completed).reason.empty());
  CHECK(runtime.Incident(cancelled).status == IncidentStatus::kCancelled);
  CHECK(runtime.Incident(cancelled).reason == "the operator changed their mind");

  CallResult late = runtime.Call(marker, Message::ForIncident(completed));
  CHECK(late.outcome == Outcome::kNotProcessed);
  CHECK(late.reason == "incident " + completed + " is COMPLETE");
  CHECK(runtime.Call(marker, Message::ForIncident(cancelled)).reason ==
        "incident " + cancelled + " is CANCELLED");
  CallResult unknown = runtime.Call(marker, Message::ForIncident("made-up"));
  CHECK(unknown.outcome == Outcome::kNotProcessed);
  CHECK(unknown.reason == "incident made-up is unknown");
  CHECK_FALSE(ran);
}

TEST_CASE("A handler that completes its incident and then throws leaves it COMPLETE") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("complete then throw", "test");
  auto stage = [](Message& message) {
    workflow::Complete(message.incident_id());
    throw std::runtime_error("after the end");
  };

  CallResult result = runtime.Call(Handler{"stage", stage}, Message::ForIncident(incident));

  CHECK(result.outcome == Outcome::kThrew);
  CHECK(runtime.Incident(incident).status == IncidentStatus::kComplete);
}

TEST_CASE("The health pseudo-incident is always handled and never ends") {
  TestRuntime runtime;
  int runs = 0;
  const Handler probe{"probe", [&](Message& message) {
                        ++runs;
                        workflow::Complete(message.incident_id());
                        if (runs == 2) throw std::runtime_error("probe failed");
                      }};

  CHECK(runtime.Call(probe, Message::ForIncident(workflow::kHealthIncident)).outcome == Outcome::kHandled);
  CHECK(runtime.Call(probe, Message::ForIncident(workflow::kHealthIncident)).outcome == Outcome::kThrew);
  CHECK(runtime.Call(probe, Message::ForIncident(workflow::kHealthIncident)).outcome == Outcome::kHandled);
  CHECK(runs == 3);
}

TEST_CASE("Call refuses a message without IncidentID, which the daemon dead-letters") {
  TestRuntime runtime;

  CHECK_THROWS_MATCHES(runtime.Call(Handler{"stage", [](Message&) {}}, Message::Parse(R"({"step":1})")),
                       workflow::MessageError,
                       Catch::Message("Call(stage): the message has no IncidentID (a string); workflowd "
                                      "dead-letters such a message before any handler sees it"));
}

TEST_CASE("RunUntilIdle follows sends through the registered handlers, oldest message first") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("fan-out", "test");
  // start -> left, right; left -> joined; right -> joined; joined -> result (no handler).
  workflow::RegisterHandler(Handler{"start",
                                    [](Message& message) {
                                      workflow::send(message, "left");
                                      workflow::send(message, "right");
                                    }},
                            "start");
  workflow::RegisterHandler(Relay("left_stage", "joined"), "left");
  workflow::RegisterHandler(Relay("right_stage", "joined"), "right");
  workflow::RegisterHandler(Relay("join_stage", "result"), "joined");

  runtime.Send("start", Step(incident, 1), "test", "start");
  runtime.Send("start", Step(incident, 2));
  std::vector<CallResult> results = runtime.RunUntilIdle();

  std::vector<std::string> order;
  for (const CallResult& result : results) {
    CHECK(result.outcome == Outcome::kHandled);
    REQUIRE_FALSE(result.sent.empty());
    order.push_back(result.handler + ":" + std::to_string(result.sent[0].body.GetInt("step")));
  }
  CHECK(order == std::vector<std::string>{"start:1", "start:2", "left_stage:1", "right_stage:1",
                                          "left_stage:2", "right_stage:2", "join_stage:1", "join_stage:1",
                                          "join_stage:2", "join_stage:2"});
  CHECK(runtime.Queued("result") == 4);
  std::vector<workflow::testing::SentMessage> delivered = runtime.Take("result");
  REQUIRE(delivered.size() == 4);
  CHECK(delivered[0].originator == "join_stage");
  CHECK(delivered[0].body.GetInt("step") == 1);
  CHECK(delivered[3].body.GetInt("step") == 2);
  CHECK(runtime.Queued("result") == 0);
  CHECK(runtime.Take("result").empty());
  CHECK(runtime.RunUntilIdle().empty());
}

TEST_CASE("Send publishes as a producer: a fresh MessageID, the program as originator, the tags") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("send", "test");
  Message message = Step(incident, 1);

  runtime.Send("inbox", message, "from_test", "to_inbox");
  runtime.Send("inbox", message);

  std::vector<workflow::testing::SentMessage> inbox = runtime.Take("inbox");
  REQUIRE(inbox.size() == 2);
  CHECK(inbox[0].originator == "test_runtime_test");
  CHECK(inbox[0].body.originator() == "test_runtime_test");
  CHECK(inbox[0].src_tag == "from_test");
  CHECK(inbox[0].body.dest_tag() == "to_inbox");
  CHECK(inbox[0].message_id.size() == 36);
  CHECK(inbox[0].message_id != inbox[1].message_id);
  CHECK(inbox[1].body.GetInt("step") == 1);
  CHECK_FALSE(message.Has("MessageID"));
}

TEST_CASE("Messages of an incident that ended while they waited are not processed") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("ends early", "test");
  bool late_ran = false;
  workflow::RegisterHandler(Handler{"ender",
                                    [](Message& message) {
                                      workflow::send(message, "late");
                                      workflow::Complete(message.incident_id());
                                    }},
                            "ender");
  workflow::RegisterHandler(Handler{"late_stage", [&](Message&) { late_ran = true; }}, "late");

  runtime.Send("ender", Message::ForIncident(incident));
  std::vector<CallResult> results = runtime.RunUntilIdle();

  REQUIRE(results.size() == 2);
  CHECK(results[0].outcome == Outcome::kHandled);
  CHECK(results[1].queue == "late");
  CHECK(results[1].handler == "late_stage");
  CHECK(results[1].outcome == Outcome::kNotProcessed);
  CHECK(results[1].reason == "incident " + incident + " is COMPLETE");
  CHECK_FALSE(late_ran);
}

TEST_CASE("A handler with retries is delivered again, its original message, after the others waiting") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("retries", "test");
  int attempts = 0;
  bool got_a_failed_attempts_message = false;
  auto flaky = [&](Message& message) {
    ++attempts;
    got_a_failed_attempts_message |= message.Has("mangled");
    message.Set("mangled", true);
    workflow::send(message, "out");
    if (attempts < 3) throw std::runtime_error("not yet");
  };
  workflow::RegisterHandler(Handler{"flaky", flaky}, "flaky",
                            {.retry = {.max_attempts = 3,
                                       .first_delay = std::chrono::milliseconds(100),
                                       .max_delay = std::chrono::milliseconds(1000)}});
  workflow::RegisterHandler(Relay("steady", "out"), "steady");

  runtime.Send("flaky", Step(incident, 1));
  runtime.Send("steady", Step(incident, 2));
  std::vector<CallResult> results = runtime.RunUntilIdle();

  REQUIRE(results.size() == 4);
  CHECK(results[0].handler == "flaky");
  CHECK(results[0].outcome == Outcome::kRetried);
  CHECK(results[0].attempt == 1);
  CHECK(results[0].reason == "not yet");
  CHECK(results[0].dropped == 1);
  // The delay lets the message waiting behind it through first.
  CHECK(results[1].handler == "steady");
  CHECK(results[2].outcome == Outcome::kRetried);
  CHECK(results[2].attempt == 2);
  CHECK(results[3].outcome == Outcome::kHandled);
  CHECK(results[3].attempt == 3);
  CHECK(results[3].message_id == results[0].message_id);
  CHECK_FALSE(got_a_failed_attempts_message);
  CHECK(runtime.Incident(incident).status == IncidentStatus::kActive);
  std::vector<workflow::testing::SentMessage> out = runtime.Take("out");
  REQUIRE(out.size() == 2);  // steady's, then flaky's third attempt's: the failed ones' were dropped
  CHECK(out[0].originator == "steady");
  CHECK(out[1].originator == "flaky");
  CHECK(out[1].body.GetInt("step") == 1);
}

TEST_CASE("A handler that fails its last attempt fails the incident") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("retries run out", "test");
  workflow::RegisterHandler(Handler{"broken", [](Message&) { throw std::runtime_error("always"); }}, "broken",
                            {.retry = {.max_attempts = 2}});

  CallResult first = runtime.Deliver("broken", Message::ForIncident(incident));
  CHECK(first.outcome == Outcome::kRetried);
  CHECK(runtime.Incident(incident).status == IncidentStatus::kActive);
  CHECK(runtime.Queued("broken") == 1);

  std::vector<CallResult> rest = runtime.RunUntilIdle();
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].outcome == Outcome::kThrew);
  CHECK(rest[0].attempt == 2);
  CHECK(runtime.Incident(incident).status == IncidentStatus::kError);
  CHECK(runtime.Incident(incident).reason == "handler broken failed: always");
}

TEST_CASE("RunUntilIdle stops a workflow that sends in a loop, naming the queue") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("loop", "test");
  workflow::RegisterHandler(Relay("looper", "loop"), "loop");
  runtime.Send("loop", Message::ForIncident(incident));

  CHECK_THROWS_MATCHES(
      runtime.RunUntilIdle(50), workflow::Error,
      Catch::Message("RunUntilIdle: still busy after 50 deliveries, with 1 message(s) waiting "
                     "for handlers, the next for queue 'loop'; if the workflow is meant to run "
                     "this long, pass a larger max_deliveries, else it sends in a loop"));
}

TEST_CASE("RegisterHandler refuses a queue taken, workflowd's own queue, and a call from a handler") {
  TestRuntime runtime;
  workflow::RegisterHandler(Relay("first", "out"), "taken");

  CHECK_THROWS_MATCHES(
      workflow::RegisterHandler(Relay("second", "out"), "taken"), workflow::RegistrationError,
      Catch::Message("queue 'taken' is already taken by handler first, so handler second cannot "
                     "have it"));
  CHECK_THROWS_MATCHES(
      workflow::RegisterHandler(Relay("squatter", "out"), "_Cleanup"), workflow::RegistrationError,
      Catch::Message("RegisterHandler(squatter, '_Cleanup'): the queue belongs to workflowd's own "
                     "cleanup stage; choose another name"));

  const std::string incident = workflow::CreateIncident("registers late", "test");
  CallResult result = runtime.Call(
      Handler{"registrar", [](Message&) { workflow::RegisterHandler(Relay("late", "out"), "late_queue"); }},
      Message::ForIncident(incident));
  CHECK(result.outcome == Outcome::kThrew);
  CHECK(result.reason ==
        "RegisterHandler(late, 'late_queue') was called from handler registrar: register handlers "
        "only in the plugin's entry point, while the daemon loads it");
  CHECK_THROWS_WITH(runtime.Deliver("late_queue", Message::ForIncident(incident)),
                    "Deliver to 'late_queue': no handler is registered for this queue (registered: taken)");
}

TEST_CASE("The runtime cannot be driven from inside a handler") {
  TestRuntime runtime;
  const std::string incident = workflow::CreateIncident("reentrant", "test");
  const Handler inner{"inner", [](Message&) {}};

  CallResult result =
      runtime.Call(Handler{"outer", [&](Message& message) { runtime.Call(inner, message.Clone()); }},
                   Message::ForIncident(incident));

  CHECK(result.outcome == Outcome::kThrew);
  CHECK(result.reason ==
        "TestRuntime::Call was called from handler outer: drive the test runtime from the test itself");
}

TEST_CASE("LoadPlugin registers a plugin's handlers as workflowd does") {
  TestRuntime runtime;
  runtime.LoadPlugin(CasePlugin("good"));
  const std::string incident = workflow::CreateIncident("good", "test");
  Message message = Message::ForIncident(incident);
  message.Set("name", "world");

  CallResult greet = runtime.Deliver("good_greet", std::move(message));

  CHECK(greet.handler == "GreetHandler");
  CHECK(greet.queue == "good_greet");
  REQUIRE(greet.sent.size() == 1);
  CHECK(greet.sent[0].queue == "good_greeted");
  CHECK(greet.sent[0].originator == "GreetHandler");
  CHECK(greet.sent[0].src_tag == "greet");
  CHECK(greet.sent[0].body.GetString("greeting") == "hello world");
  CHECK_THROWS_WITH(
      runtime.LoadPlugin(CasePlugin("good")),
      "plugin " + CasePlugin("good").string() +
          ": a handler registration was refused: queue 'good_greet' is already taken by handler "
          "GreetHandler of plugin " +
          CasePlugin("good").string() +
          ", so handler GreetHandler of "
          "plugin " +
          CasePlugin("good").string() +
          " cannot have it; give every handler a valid "
          "queue name that no other handler has");
}

TEST_CASE("A plugin's retry policy applies in the test runtime") {
  TestRuntime runtime;
  runtime.LoadPlugin(CasePlugin("state_stages"));
  const std::string incident = workflow::CreateIncident("flaky", "test");

  runtime.Send("flaky_stage", Message::ForIncident(incident));
  std::vector<CallResult> results = runtime.RunUntilIdle();

  REQUIRE(results.size() == 3);
  CHECK(results[0].outcome == Outcome::kRetried);
  CHECK(results[1].outcome == Outcome::kRetried);
  CHECK(results[2].outcome == Outcome::kHandled);
  CHECK(runtime.Persisted(incident, "flaky_stage").size() == 3);
  CHECK(runtime.Queued("state_out") == 1);
}

TEST_CASE("LoadPlugin refuses what workflowd refuses, and keeps none of the refused plugin's handlers") {
  TestRuntime runtime;
  struct Case {
    std::string name;
    std::string refusal;  // after "plugin <path>"
  };
  const std::string duplicate = CasePlugin("duplicate_in_one").string();
  const std::vector<Case> cases{
      {"no_entry_point", ": no entry point: it exports no RegisterHandlers"},
      {"no_abi", ": no SDK ABI record: it exports no workflow_plugin_abi"},
      {"wrong_abi", ": SDK ABI mismatch: the plugin was built for ABI " +
                        std::to_string(WORKFLOW_ABI_MAJOR + 1) +
                        ".0 (SDK " WORKFLOW_VERSION_STRING "), this SDK provides ABI " +
                        std::to_string(WORKFLOW_ABI_MAJOR) + "." + std::to_string(WORKFLOW_ABI_MINOR)},
      {"null_sdk_version", ": invalid SDK ABI record: its sdk_version is null"},
      {"throwing_register", ": RegisterHandlers threw: database unreachable"},
      {"throwing_nonstd", ": RegisterHandlers threw: a non-standard exception"},
      {"duplicate_in_one",
       ": a handler registration was refused: queue 'twice_queue' is registered twice by plugin " +
           duplicate + ": first for handler FirstHandler, then for handler SecondHandler"},
      {"registers_nothing", ": registered no handlers"},
      {"bad_queue_name",
       ": a handler registration was refused: RegisterHandler(Handler, 'amq.reserved'): names "
       "starting with 'amq.' belong to the broker"},
      {"sends_while_registering",
       ": RegisterHandlers sent messages: 1 message(s), the first to queue 'announcements'"},
      {"flushes_while_registering",
       ": RegisterHandlers threw: FlushMessages cannot be called while plugins are "
       "registering handlers"},
  };

  for (const Case& refused : cases) {
    const std::string plugin = CasePlugin(refused.name).string();
    CHECK_THAT(RefusalOf(runtime, plugin), StartsWith("plugin " + plugin + refused.refusal));
  }
  // duplicate_in_one and sends_while_registering had registered a queue before they failed.
  const std::string incident = workflow::CreateIncident("after the refusals", "test");
  for (std::string_view queue : {"twice_queue", "sends_queue"}) {
    CHECK_THROWS_WITH(runtime.Deliver(queue, Message::ForIncident(incident)),
                      "Deliver to '" + std::string(queue) +
                          "': no handler is registered for this queue; load the plugin first");
  }
}

TEST_CASE("LoadPlugin refuses a file that is no shared object, with the loader's reason") {
  TestRuntime runtime;
  const std::filesystem::path plugin = CasePlugin("not_a_plugin");

  const std::string refusal = RefusalOf(runtime, plugin);

  CHECK_THAT(refusal, StartsWith("plugin " + plugin.string() + ": cannot be loaded: "));
  CHECK_THAT(refusal, Contains("invalid ELF header"));
}
