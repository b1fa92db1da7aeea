#pragma once

// The workflowd plugin-author API: the VESTEC workflow manager's calls, in C++.
//
//   void A_handler(workflow::Message& message) {
//     workflow::send(message, "B_queue");
//   }
//   void B_handler(workflow::Message& message) { ... }
//
//   void RegisterHandlers() {
//     workflow::RegisterHandler(WORKFLOW_HANDLER(A_handler), "A_queue");
//     workflow::RegisterHandler(WORKFLOW_HANDLER(B_handler), "B_queue");
//   }
//   WORKFLOW_PLUGIN(RegisterHandlers)
//
// The contract between a handler and the daemon that runs it:
// - Threads. Handlers run on the daemon's worker threads. Different messages, for the same
//   handler and the same incident, may be handled at the same time on different threads, so a
//   handler that touches shared state must lock it.
// - Delivery is at least once. A message is acknowledged to the broker only after the handler
//   returned and every message it sent was confirmed by the broker; after a crash or a lost
//   connection it is delivered again. Write handlers so that running twice does no harm.
// - Normal return: the messages the handler sent are published, in the order of send(), and
//   then its input is acknowledged.
// - Throw (anything): the messages it sent and did not flush are discarded, the error is logged
//   with the exception's text, and the input is acknowledged: it is not retried.
// - The message a handler receives is valid UTF-8 JSON, an object, with a string IncidentID;
//   anything else is dead-lettered by the daemon before it reaches a handler.

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <workflow/errors.hpp>
#include <workflow/export.hpp>
#include <workflow/message.hpp>
#include <workflow/outgoing_message.hpp>
#include <workflow/plugin.hpp>
#include <workflow/version.hpp>

namespace workflow {

using HandlerFunction = std::function<void(Message& message)>;

// A stage function with its name. The name is recorded as the originator of what it sends,
// as the VESTEC @workflow.handler decorator recorded the Python function's name.
struct Handler {
  std::string name;
  HandlerFunction function;
};

// Builds a Handler named after the function: WORKFLOW_HANDLER(A_handler).
#define WORKFLOW_HANDLER(function) ::workflow::Handler{#function, function}

// Runs a handler that throws again, after a growing delay, before giving up on the message.
struct RetryPolicy {
  unsigned max_attempts = 1;  // 1: no retry
  std::chrono::milliseconds first_delay{1000};
  std::chrono::milliseconds max_delay{60000};
};

struct HandlerOptions {
  // At most one run at a time per incident, across all worker threads and all daemons sharing
  // the state store; a message that finds the handler busy waits and is delivered again.
  bool atomic = false;
  RetryPolicy retry{};
};

// Binds a handler to a queue. Callable only inside the plugin's RegisterHandlers, while the
// daemon loads it. Throws RegistrationError for an empty or invalid queue name, a queue that
// another handler (of this plugin or another) already has, or a call outside registration.
WORKFLOW_API void RegisterHandler(Handler handler, std::string_view queue);
WORKFLOW_API void RegisterHandler(Handler handler, std::string_view queue, const HandlerOptions& options);

// Enqueues a copy of message for queue, with a new MessageID and the originator stamped in:
// provided_caller when given, else the running handler's name (outside a handler, the program's
// name). Tags are sent as AMQP headers and tell a graph what the message means. Throws
// MessageError when the message has no string IncidentID or the queue name is invalid.
WORKFLOW_API void send(const Message& message, std::string_view queue, std::string_view src_tag = {},
                       std::string_view dest_tag = {}, std::string_view provided_caller = {});

// Publishes every message enqueued on this thread now, in the order of send(), and returns once
// the broker has confirmed them all. A handler rarely needs it: the daemon flushes when the
// handler returns. Throws PublishError when a message was refused or could not be routed; the
// messages then stay enqueued, so a retry sends them again.
WORKFLOW_API void FlushMessages();

// Whether queue is a name RegisterHandler and send accept; if not, why, in *reason.
WORKFLOW_API bool IsValidQueueName(std::string_view queue, std::string* reason = nullptr);

// Incidents. Every message belongs to one; messages for an incident that has ended, or that
// the state store does not know, are not given to handlers (logged NOT_PROCESSED).

// Creates a PENDING incident and returns its id, for producer programs. Its first message
// makes it ACTIVE.
WORKFLOW_API std::string CreateIncident(std::string_view name, std::string_view kind,
                                        std::string_view comment = {});
// Ends an incident: COMPLETE, or CANCELLED with the reason. Its persisted records and locks
// are removed once none of its messages is in flight. Ending an incident that has already
// ended changes nothing (a warning is logged).
WORKFLOW_API void Complete(std::string_view incident_id);
WORKFLOW_API void Cancel(std::string_view incident_id, std::string_view reason = {});

// Records that outlive one handler run, per (incident, handler), as VESTEC's Persist did.
// Callable from handlers only: the running handler's name is the key.
namespace Persist {
WORKFLOW_API void Put(std::string_view incident_id, const Message& record);
// This handler's records of the incident, in the order they were put.
WORKFLOW_API std::vector<Message> Get(std::string_view incident_id);
// Every handler's records of the incident, in the order they were put.
WORKFLOW_API std::vector<Message> GetAll(std::string_view incident_id);
}  // namespace Persist

// The always-active pseudo-incident of health probes: its messages are always handled.
inline constexpr std::string_view kHealthIncident = "test_workflow_health";

}  // namespace workflow
