#include "log_context.hpp"

namespace workflowd {
namespace {

thread_local const LogContext* current = nullptr;

}  // namespace

const LogContext* CurrentLogContext() { return current; }

LogScope::LogScope(const LogContext& context) : context_(context), previous_(current) { current = &context_; }

LogScope::~LogScope() { current = previous_; }

}  // namespace workflowd
