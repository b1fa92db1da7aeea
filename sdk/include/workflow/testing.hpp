#pragma once

// The SDK's test runtime: unit-test handlers, and whole plugins, without a broker or workflowd.
// Link Workflow::testing (a static library beside libworkflow.so); any test framework will do.
//
//   workflow::testing::TestRuntime runtime;
//   std::string incident = workflow::CreateIncident("a test", "simple");
//   workflow::testing::CallResult a = runtime.Call(WORKFLOW_HANDLER(A_handler),
//                                                  workflow::Message::ForIncident(incident));
//   REQUIRE(a.sent.size() == 1);
//   CHECK(a.sent[0].queue == "B_queue");
//
//   runtime.LoadPlugin("simple_workflow.so");       // its RegisterHandlers binds A_queue, B_queue
//   runtime.Send("A_queue", workflow::Message::ForIncident(incident));
//   runtime.RunUntilIdle();                          // A_handler, then B_handler
//   CHECK(runtime.Incident(incident).status == workflow::testing::IncidentStatus::kComplete);
//
// It keeps in memory what workflowd keeps in its state store and the broker, and applies the
// daemon's rules to each delivery:
// - Incidents: CreateIncident makes one PENDING with a fresh id; its first handled message makes
//   it ACTIVE; Complete and Cancel end it (ending an ended or unknown incident changes nothing
//   and prints a warning). A message of an unknown or ended incident is not handled: its result
//   is kNotProcessed with the reason. The health pseudo-incident is always handled, never ends.
// - A handler runs inside an invocation named after it, as in the daemon: send() stamps that name
//   as the originator and Persist keys its records by it. On a normal return what it sent is
//   published, in order; when it throws, what it sent and did not flush is dropped and its
//   incident goes to ERROR ("handler <name> failed: <what>"), unless a retry is left.
// - Retries (HandlerOptions::retry) are emulated without waiting: a registered handler that throws
//   with attempts left has its message put back at the end of its queue, as the daemon's delay
//   queue lets other messages pass meanwhile; RunUntilIdle delivers it again.
// - Atomic handlers are trivially atomic: everything runs on the calling thread, one handler at a
//   time. Persist records are never removed: the daemon's _Cleanup stage, which removes them
//   once an incident has ended, is workflowd's own and does not run here (nor is it sent to).
// - Plugins are opened as workflowd opens them (RTLD_NOW | RTLD_LOCAL, the ABI record checked
//   first) and refused for what workflowd refuses them for: no entry point, another ABI major,
//   a RegisterHandlers that throws, sends, or registers nothing, a queue registered twice.
//
// Each TestRuntime starts empty (no incidents, handlers, waiting messages or records) and keeps
// nothing when destroyed, so make one per test. Messages the test sent outside handlers and did
// not flush (workflow::send without workflow::FlushMessages) are discarded with a warning when a
// runtime starts and when it ends, so that no other test publishes them.
//
// One TestRuntime at a time per process: libworkflow.so forwards to one runtime, so a second
// one is refused while the first lives. Not thread-safe: drive it from one thread; handlers run
// on that thread, inside the call that delivers to them.

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <workflow/workflow.hpp>

namespace workflow::testing {

enum class IncidentStatus { kPending, kActive, kComplete, kCancelled, kError };
std::string_view ToString(IncidentStatus status);  // "PENDING", ..., as workflowctl shows them
std::ostream& operator<<(std::ostream& out, IncidentStatus status);

struct IncidentRecord {
  std::string id;
  std::string name;
  std::string kind;
  std::string comment;  // given to CreateIncident
  IncidentStatus status = IncidentStatus::kPending;
  std::string reason;  // why it ended: Cancel's reason, or the failure that made it ERROR
};

// A message published to a queue, by a handler or by the test.
struct SentMessage {
  std::string queue;
  std::string src_tag;
  std::string dest_tag;
  std::string originator;
  std::string message_id;
  Message body;  // parsed, with the tags: what the handler of the queue receives
};

enum class Outcome {
  kHandled,       // the handler returned normally
  kThrew,         // the handler threw and has no attempt left
  kRetried,       // the handler threw; its message waits in its queue for the next attempt
  kNotProcessed,  // the incident is unknown or has ended: the handler did not run
};
std::string_view ToString(Outcome outcome);
std::ostream& operator<<(std::ostream& out, Outcome outcome);

// What became of one delivery.
struct CallResult {
  std::string queue;  // empty for Call, which runs a handler bound to no queue
  std::string handler;
  std::string message_id;  // of the delivered message; empty when it had none
  std::string incident_id;
  unsigned attempt = 1;
  Outcome outcome = Outcome::kHandled;
  // kThrew, kRetried: the exception's text; kNotProcessed: why the handler did not run.
  std::string reason;
  // What the handler published, in order: what it flushed, then, on a normal return, the rest.
  std::vector<SentMessage> sent;
  // Sent and not flushed when the handler threw: discarded, as the daemon discards them.
  std::size_t dropped = 0;

  bool threw() const noexcept { return outcome == Outcome::kThrew || outcome == Outcome::kRetried; }
};

class TestRuntime {
 public:
  // Installs this runtime in libworkflow.so. Throws workflow::Error while another one lives.
  TestRuntime();
  // Uninstalls it and unloads the plugins it loaded.
  ~TestRuntime();
  TestRuntime(const TestRuntime&) = delete;
  TestRuntime& operator=(const TestRuntime&) = delete;

  // Opens a plugin file and runs its RegisterHandlers, as workflowd does at start. Throws
  // workflow::Error with workflowd's refusal ("plugin <path>: <what failed>: ...") and then has
  // registered none of the plugin's handlers. Handlers may also be registered directly, with
  // workflow::RegisterHandler, from the test (not from a handler).
  void LoadPlugin(const std::filesystem::path& file);

  // Runs one handler, bound to no queue, with message, as the daemon runs a delivery. What it
  // sends is published to its queues (for RunUntilIdle, or Take) and returned in the result.
  // Throws workflow::MessageError when message has no string IncidentID: workflowd dead-letters
  // such a message before any handler sees it.
  CallResult Call(const Handler& handler, Message message);
  // Runs the handler registered for queue with message, now, with its options. Throws
  // workflow::Error when no handler is registered for queue.
  CallResult Deliver(std::string_view queue, Message message);

  // Publishes message to queue as a producer program does (send, then FlushMessages): with a new
  // MessageID, the test program's name as originator, and the tags.
  void Send(std::string_view queue, const Message& message, std::string_view src_tag = {},
            std::string_view dest_tag = {});
  // Delivers the published messages to the registered handlers, oldest first, until no queue
  // with a handler holds a message, and returns every delivery's result in order. Messages for
  // queues without a handler stay there (Take). Throws workflow::Error after max_deliveries
  // deliveries with messages still waiting, which is how a workflow that loops forever shows.
  std::vector<CallResult> RunUntilIdle(std::size_t max_deliveries = 100'000);

  // How many messages wait in queue.
  std::size_t Queued(std::string_view queue) const;
  // Removes the messages waiting in queue and returns them, oldest first.
  std::vector<SentMessage> Take(std::string_view queue);

  // Throws workflow::Error when no incident of that id was created in this runtime.
  const IncidentRecord& Incident(std::string_view incident_id) const;
  // The records handler persisted for the incident, in the order they were put; an empty
  // handler means every handler's, in the order they were put.
  std::vector<Message> Persisted(std::string_view incident_id, std::string_view handler) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace workflow::testing
