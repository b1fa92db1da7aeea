// RegisterHandlers throws something that is not a std::exception.
#include <workflow/workflow.hpp>

namespace {

void RegisterHandlers() { throw 42; }

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
