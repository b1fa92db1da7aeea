// The two-stage workflow of the VESTEC developer overview: a message on A_queue runs
// A_handler, which passes it on to B_queue, where B_handler completes the incident.

#include <cstdio>

#include <workflow/workflow.hpp>

namespace {

void A_handler(workflow::Message& message) {
  std::fprintf(stderr, "Stage A running for incident %.*s\n",
               static_cast<int>(message.incident_id().size()), message.incident_id().data());
  workflow::send(message, "B_queue");
}

void B_handler(workflow::Message& message) {
  std::fprintf(stderr, "Stage B running for incident %.*s (from %.*s)\n",
               static_cast<int>(message.incident_id().size()), message.incident_id().data(),
               static_cast<int>(message.originator().size()), message.originator().data());
  workflow::Complete(message.incident_id());
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(A_handler), "A_queue");
  workflow::RegisterHandler(WORKFLOW_HANDLER(B_handler), "B_queue");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
