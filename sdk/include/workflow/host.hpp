#pragma once

// For hosts only (the daemon, workflowctl, test runtimes): plugin authors need none of this.
//
// libworkflow.so holds the API that plugins call and forwards it to the one Runtime the host
// installs. The per-invocation state (which handler runs, what it has sent) is thread-local,
// set by the host around each handler call with an Invocation.

#include <string>
#include <string_view>
#include <vector>

#include <workflow/export.hpp>
#include <workflow/outgoing_message.hpp>
#include <workflow/workflow.hpp>

namespace workflow::host {

class WORKFLOW_API Runtime {
 public:
  virtual ~Runtime();
  // RegisterHandler after the SDK's own checks. Throws RegistrationError when refused.
  virtual void RegisterHandler(Handler handler, std::string_view queue) = 0;
  // Publishes messages and returns once the broker confirmed every one; throws PublishError.
  virtual void Publish(const std::vector<OutgoingMessage>& messages) = 0;
};

// Installs the runtime the API forwards to; nullptr uninstalls. The host keeps it alive
// until it uninstalls it, and installs it before any thread can call the API.
WORKFLOW_API void InstallRuntime(Runtime* runtime) noexcept;

// One handler call on this thread: while it lives, send() enqueues into its outbox and stamps
// handler_name as the originator. Not movable: it registers its own address.
class WORKFLOW_API Invocation {
 public:
  explicit Invocation(std::string_view handler_name);
  ~Invocation();
  Invocation(const Invocation&) = delete;
  Invocation& operator=(const Invocation&) = delete;

  std::string_view handler_name() const noexcept { return handler_name_; }
  // What the handler has sent and not flushed, in the order of send().
  std::vector<OutgoingMessage>& outbox() noexcept { return outbox_; }

  // The invocation running on this thread, or nullptr.
  static Invocation* Current() noexcept;

 private:
  std::string_view handler_name_;
  std::vector<OutgoingMessage> outbox_;
  Invocation* previous_;
};

}  // namespace workflow::host
