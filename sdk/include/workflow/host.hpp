#pragma once

// For hosts only (the daemon, workflowctl, test runtimes): plugin authors need none of this.
//
// libworkflow.so holds the API that plugins call and forwards it to the one Runtime the host
// installs. The per-invocation state (which handler runs, what it has sent) is thread-local,
// set by the host around each handler call with an Invocation.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <workflow/export.hpp>
#include <workflow/outgoing_message.hpp>
#include <workflow/workflow.hpp>

namespace workflow::host {

enum class IncidentEnd { kComplete, kCancel };

// What the API forwards to. A host implements what it offers; the calls it does not override
// throw workflow::Error saying that this program does not offer them.
class WORKFLOW_API Runtime {
 public:
  virtual ~Runtime();
  // RegisterHandler after the SDK's own checks. Throws RegistrationError when refused.
  virtual void RegisterHandler(Handler handler, std::string_view queue, const HandlerOptions& options) = 0;
  // Publishes messages and returns once the broker confirmed every one; throws PublishError.
  virtual void Publish(const std::vector<OutgoingMessage>& messages) = 0;

  virtual std::string CreateIncident(std::string_view name, std::string_view kind, std::string_view comment);
  virtual void EndIncident(std::string_view incident_id, IncidentEnd how, std::string_view reason);
  virtual void PersistPut(std::string_view incident_id, std::string_view handler, std::string json);
  // An empty handler means every handler's records.
  virtual std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler);
};

// A new MessageID, as send() stamps it: a UUIDv7 (RFC 9562), random but ordered by the time it was
// made, so that stores indexing messages by id append near the end of the index instead of
// writing all over it. Thread-safe; no lock and no syscall.
WORKFLOW_API std::string NewMessageId();

// Installs the runtime the API forwards to; nullptr uninstalls. The host keeps it alive
// until it uninstalls it, and installs it before any thread can call the API.
WORKFLOW_API void InstallRuntime(Runtime* runtime) noexcept;

// Discards what send() enqueued on this thread outside any invocation (a producer's messages)
// and nobody flushed, and returns how many. A test runtime calls it when it starts and ends,
// so that one test's unflushed sends cannot be published by the next test's FlushMessages.
WORKFLOW_API std::size_t DiscardProducerMessages() noexcept;

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
