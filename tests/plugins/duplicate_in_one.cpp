// One plugin binding two handlers to the same queue.
#include <workflow/workflow.hpp>

namespace {

void FirstHandler(workflow::Message&) {}
void SecondHandler(workflow::Message&) {}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(FirstHandler), "twice_queue");
  workflow::RegisterHandler(WORKFLOW_HANDLER(SecondHandler), "twice_queue");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
