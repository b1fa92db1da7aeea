#pragma once

#include "settings.hpp"

namespace workflowd {

// Routes spdlog's default logger to stderr as "time level [thread] text". Call once, early.
void SetUpLogging(LogLevel level);
void SetLogLevel(LogLevel level);

}  // namespace workflowd
