// Exports the ABI record but no RegisterHandlers alias.
#include <workflow/workflow.hpp>

extern "C" BOOST_SYMBOL_EXPORT const workflow::PluginAbi workflow_plugin_abi{
    WORKFLOW_ABI_MAJOR, WORKFLOW_ABI_MINOR, WORKFLOW_VERSION_STRING};
