#pragma once

#include <string_view>

namespace workflowd {

// What a log line is about, when a worker logs it while running a delivery's handler: the
// journal sink turns it into fields (WORKFLOW_INCIDENT, ...). Empty fields are left out.
struct LogContext {
  std::string_view incident;
  std::string_view message_id;
  std::string_view handler;
  std::string_view queue;
};

// The context of the calling thread, or nullptr outside a LogScope.
const LogContext* CurrentLogContext();

// Sets the calling thread's log context while it lives, and restores the one before. The
// strings are not copied: they must outlive the scope. No allocation.
class LogScope {
 public:
  explicit LogScope(const LogContext& context);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogContext context_;
  const LogContext* previous_;
};

}  // namespace workflowd
