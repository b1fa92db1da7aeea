// Sends a message from RegisterHandlers, where there is no handler and no broker.
#include <workflow/workflow.hpp>

namespace {

void Handler(workflow::Message&) {}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "sends_queue");
  workflow::send(workflow::Message::ForIncident("registration"), "announcements");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
