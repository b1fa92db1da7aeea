// Exports the RegisterHandlers alias but no ABI record: not built with WORKFLOW_PLUGIN.
#include <workflow/workflow.hpp>

namespace {

void Handler(workflow::Message&) {}

void RegisterNoAbiHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "no_abi_queue");
}

}  // namespace

BOOST_DLL_ALIAS(RegisterNoAbiHandlers, RegisterHandlers)
