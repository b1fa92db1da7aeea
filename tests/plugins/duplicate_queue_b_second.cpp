// Claims shared_queue, as the other plugin in duplicate_queue/ does.
#include <workflow/workflow.hpp>

namespace {

void SecondHandler(workflow::Message&) {}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(SecondHandler), "shared_queue");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
