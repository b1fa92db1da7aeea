// The smallest plugin: one stage, bound to the queue "hello", that logs each message it gets.

#include <cstdio>

#include <workflow/workflow.hpp>

namespace {

void hello_handler(workflow::Message& message) {
  std::fprintf(stderr, "hello_workflow: incident %.*s said hello\n",
               static_cast<int>(message.incident_id().size()), message.incident_id().data());
}

void RegisterHandlers() { workflow::RegisterHandler(WORKFLOW_HANDLER(hello_handler), "hello"); }

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
