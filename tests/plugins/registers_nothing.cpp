// A valid plugin whose RegisterHandlers registers nothing.
#include <workflow/workflow.hpp>

namespace {

void RegisterHandlers() {}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
