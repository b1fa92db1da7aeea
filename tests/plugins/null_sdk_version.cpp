// An ABI record of the right major whose sdk_version is null.
#include <workflow/workflow.hpp>

extern "C" BOOST_SYMBOL_EXPORT const workflow::PluginAbi workflow_plugin_abi{
    WORKFLOW_ABI_MAJOR, WORKFLOW_ABI_MINOR, nullptr};

namespace {

void Handler(workflow::Message&) {}

void RegisterNullVersionHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(Handler), "null_sdk_version_queue");
}

}  // namespace

BOOST_DLL_ALIAS(RegisterNullVersionHandlers, RegisterHandlers)
