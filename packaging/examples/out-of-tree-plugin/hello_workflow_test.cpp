// hello_workflow.so in the SDK's test runtime: its one stage takes a message on "hello" and
// sends nothing on.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <workflow/testing.hpp>

TEST_CASE("hello_handler takes a message on the hello queue and sends nothing on") {
  workflow::testing::TestRuntime runtime;
  runtime.LoadPlugin(HELLO_WORKFLOW_PLUGIN);
  const std::string incident = workflow::CreateIncident("check", "hello");

  workflow::testing::CallResult result = runtime.Deliver("hello", workflow::Message::ForIncident(incident));

  CHECK(result.handler == "hello_handler");
  CHECK(result.outcome == workflow::testing::Outcome::kHandled);
  CHECK(result.sent.empty());
  CHECK(runtime.Incident(incident).status == workflow::testing::IncidentStatus::kActive);
}
