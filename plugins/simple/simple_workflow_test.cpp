// The seed workflow, loaded as workflowd loads it, in the SDK's test runtime: A_handler passes
// the message on to B_queue, B_handler completes the incident.
#include <workflow/testing.hpp>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using workflow::Message;
using workflow::testing::CallResult;
using workflow::testing::IncidentStatus;
using workflow::testing::Outcome;

}  // namespace

TEST_CASE("A_handler sends the message on to B_queue, stamped as its own") {
  workflow::testing::TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("seed", "simple");
  Message start = Message::ForIncident(incident);
  start.Set("note", "kept");

  CallResult a = runtime.Deliver("A_queue", std::move(start));

  CHECK(a.outcome == Outcome::kHandled);
  CHECK(a.handler == "A_handler");
  REQUIRE(a.sent.size() == 1);
  CHECK(a.sent[0].queue == "B_queue");
  CHECK(a.sent[0].originator == "A_handler");
  CHECK(a.sent[0].body.originator() == "A_handler");
  CHECK(a.sent[0].body.incident_id() == incident);
  CHECK(a.sent[0].body.GetString("note") == "kept");
  CHECK(runtime.Incident(incident).status == IncidentStatus::kActive);
  CHECK(runtime.Queued("B_queue") == 1);
}

TEST_CASE("A message on A_queue runs A, then B, which completes the incident") {
  workflow::testing::TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("seed", "simple");
  CHECK(runtime.Incident(incident).status == IncidentStatus::kPending);

  runtime.Send("A_queue", Message::ForIncident(incident));
  std::vector<CallResult> results = runtime.RunUntilIdle();

  REQUIRE(results.size() == 2);
  CHECK(results[0].handler == "A_handler");
  CHECK(results[0].outcome == Outcome::kHandled);
  CHECK(results[1].handler == "B_handler");
  CHECK(results[1].outcome == Outcome::kHandled);
  CHECK(results[1].sent.empty());
  CHECK(runtime.Incident(incident).status == IncidentStatus::kComplete);
  CHECK(runtime.Queued("A_queue") == 0);
  CHECK(runtime.Queued("B_queue") == 0);
}

TEST_CASE("Once B has completed the incident, its further messages are not processed") {
  workflow::testing::TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("seed", "simple");
  runtime.Send("A_queue", Message::ForIncident(incident));
  runtime.RunUntilIdle();

  CallResult late = runtime.Deliver("A_queue", Message::ForIncident(incident));

  CHECK(late.outcome == Outcome::kNotProcessed);
  CHECK(late.reason == "incident " + incident + " is COMPLETE");
  CHECK(late.sent.empty());
  CHECK(runtime.Queued("B_queue") == 0);
}
