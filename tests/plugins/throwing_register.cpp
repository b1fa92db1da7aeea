// RegisterHandlers fails with a std::exception, as a plugin that checks a dependency might.
#include <workflow/workflow.hpp>

#include <stdexcept>

namespace {

void RegisterHandlers() { throw std::runtime_error("database unreachable"); }

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
