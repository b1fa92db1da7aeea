#include <workflow/host.hpp>

#include "runtime_slot.hpp"

namespace workflow::host {
namespace {
thread_local Invocation* current_invocation = nullptr;
}  // namespace

Runtime::~Runtime() = default;

namespace {
[[noreturn]] void NotOffered(std::string_view call) {
  throw Error(std::string(call) + " is not available in this program: it needs workflowd's state store");
}
}  // namespace

std::string Runtime::CreateIncident(std::string_view, std::string_view, std::string_view) {
  NotOffered("CreateIncident");
}
void Runtime::EndIncident(std::string_view, IncidentEnd how, std::string_view) {
  NotOffered(how == IncidentEnd::kComplete ? "Complete" : "Cancel");
}
void Runtime::PersistPut(std::string_view, std::string_view, std::string) { NotOffered("Persist::Put"); }
std::vector<std::string> Runtime::PersistGet(std::string_view, std::string_view) {
  NotOffered("Persist::Get");
}

void InstallRuntime(Runtime* runtime) noexcept {
  detail::runtime_slot.store(runtime, std::memory_order_release);
}

Invocation::Invocation(std::string_view handler_name)
    : handler_name_(handler_name), previous_(current_invocation) {
  current_invocation = this;
}

Invocation::~Invocation() { current_invocation = previous_; }

Invocation* Invocation::Current() noexcept { return current_invocation; }

}  // namespace workflow::host
