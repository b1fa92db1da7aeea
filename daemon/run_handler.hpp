#pragma once

#include "settlement.hpp"

namespace workflowd {

// Runs one delivery through its handler on the calling (worker) thread and says what to do
// with it. Never throws: a refused body becomes a dead letter, a throwing handler an error
// that drops its sends.
Settlement RunHandler(Job&& job);

}  // namespace workflowd
