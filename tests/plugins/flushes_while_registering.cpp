// Sends and flushes a message from RegisterHandlers, before the daemon has a broker connection.
#include <workflow/workflow.hpp>

namespace {

void Handler(workflow::Message&) {}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "flushes_queue");
  workflow::send(workflow::Message::ForIncident("registration"), "announcements");
  workflow::FlushMessages();
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
