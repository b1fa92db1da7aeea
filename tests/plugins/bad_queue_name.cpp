// Registers a queue name that belongs to the broker.
#include <workflow/workflow.hpp>

namespace {

void Handler(workflow::Message&) {}

void RegisterHandlers() { workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "amq.reserved"); }

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
