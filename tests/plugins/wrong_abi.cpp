// Built for the next SDK ABI major. The exports are written out, since WORKFLOW_PLUGIN always
// records the ABI of the headers it is compiled with.
#include <workflow/workflow.hpp>

extern "C" BOOST_SYMBOL_EXPORT const workflow::PluginAbi workflow_plugin_abi{
    WORKFLOW_ABI_MAJOR + 1, 0, WORKFLOW_VERSION_STRING};

namespace {

void Handler(workflow::Message&) {}

void RegisterWrongAbiHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "wrong_abi_queue");
}

}  // namespace

BOOST_DLL_ALIAS(RegisterWrongAbiHandlers, RegisterHandlers)
