#pragma once

#include <atomic>

#include <workflow/host.hpp>

namespace workflow::detail {

// The runtime the host installed; read on every call that needs the host.
inline std::atomic<host::Runtime*> runtime_slot{nullptr};

}  // namespace workflow::detail
