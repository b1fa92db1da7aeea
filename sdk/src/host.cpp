#include <workflow/host.hpp>

#include "runtime_slot.hpp"

namespace workflow::host {
namespace {
thread_local Invocation* current_invocation = nullptr;
}  // namespace

Runtime::~Runtime() = default;

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
