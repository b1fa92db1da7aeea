#include <workflow/host.hpp>
#include <workflow/testing.hpp>

#include <algorithm>
#include <cerrno>  // program_invocation_short_name
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <utility>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include "plugin_file.hpp"

namespace workflow::testing {
namespace {

// workflowd's built-in stage; a plugin that registers its queue is refused.
constexpr std::string_view kCleanupQueue = "_Cleanup";

bool IsEnded(IncidentStatus status) {
  return status == IncidentStatus::kComplete || status == IncidentStatus::kCancelled ||
         status == IncidentStatus::kError;
}

// What the handler of message.queue receives: the body parsed, with the tags.
SentMessage Received(const OutgoingMessage& message) {
  return SentMessage{.queue = message.queue,
                     .src_tag = message.src_tag,
                     .dest_tag = message.dest_tag,
                     .originator = message.originator,
                     .message_id = message.message_id,
                     .body = Message::Parse(message.body, message.src_tag, message.dest_tag)};
}

SentMessage Clone(const SentMessage& message) {
  return SentMessage{.queue = message.queue,
                     .src_tag = message.src_tag,
                     .dest_tag = message.dest_tag,
                     .originator = message.originator,
                     .message_id = message.message_id,
                     .body = message.body.Clone()};
}

// Points slot at the result of the handler that runs while this lives.
class RunningHandler {
 public:
  RunningHandler(CallResult*& slot, CallResult& result) : slot_(slot) { slot_ = &result; }
  ~RunningHandler() { slot_ = nullptr; }
  RunningHandler(const RunningHandler&) = delete;
  RunningHandler& operator=(const RunningHandler&) = delete;

 private:
  CallResult*& slot_;
};

// What workflowd logs as a warning, where a test author sees it (ctest shows it on failure).
void Warn(const std::string& text) { std::fprintf(stderr, "workflow::testing: warning: %s\n", text.c_str()); }

}  // namespace

std::string_view ToString(IncidentStatus status) {
  switch (status) {
    case IncidentStatus::kPending: return "PENDING";
    case IncidentStatus::kActive: return "ACTIVE";
    case IncidentStatus::kComplete: return "COMPLETE";
    case IncidentStatus::kCancelled: return "CANCELLED";
    case IncidentStatus::kError: return "ERROR";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, IncidentStatus status) { return out << ToString(status); }

std::string_view ToString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kHandled: return "handled";
    case Outcome::kThrew: return "threw";
    case Outcome::kRetried: return "retried";
    case Outcome::kNotProcessed: return "not processed";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& out, Outcome outcome) { return out << ToString(outcome); }

// The runtime libworkflow.so forwards to while a TestRuntime lives, and everything it keeps.
class TestRuntime::Impl final : public host::Runtime {
 public:
  Impl();
  ~Impl() override;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // host::Runtime
  void RegisterHandler(Handler handler, std::string_view queue, const HandlerOptions& options) override;
  void Publish(const std::vector<OutgoingMessage>& messages) override;
  std::string CreateIncident(std::string_view name, std::string_view kind, std::string_view comment) override;
  void EndIncident(std::string_view incident_id, host::IncidentEnd how, std::string_view reason) override;
  void PersistPut(std::string_view incident_id, std::string_view handler, std::string json) override;
  std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler) override;

  // TestRuntime
  void LoadPlugin(const std::filesystem::path& file);
  CallResult Call(const Handler& handler, Message message);
  CallResult Deliver(std::string_view queue, Message message);
  void Send(std::string_view queue, const Message& message, std::string_view src_tag,
            std::string_view dest_tag);
  std::vector<CallResult> RunUntilIdle(std::size_t max_deliveries);
  std::size_t Queued(std::string_view queue) const;
  std::vector<SentMessage> Take(std::string_view queue);
  const IncidentRecord& Incident(std::string_view incident_id) const;
  std::vector<Message> Persisted(std::string_view incident_id, std::string_view handler) const;

 private:
  struct Registration {
    std::string queue;
    Handler handler;
    HandlerOptions options;
    std::string plugin;  // the file that registered it; empty when the test did
  };
  // A published message that no handler has taken yet. sequence orders all queues' messages.
  struct Waiting {
    std::uint64_t sequence;
    unsigned attempt;
    SentMessage message;
  };
  using Queue = std::deque<Waiting>;
  // One RegisterHandlers run: where its registrations are recorded, to roll them back.
  struct Loading {
    std::string plugin;
    std::vector<std::string> queues;
  };

  // Discards what the test sent outside handlers and did not flush, with a warning: each
  // runtime starts and ends with an empty producer outbox.
  static void DiscardUnflushed(std::string_view when);
  void RefuseWhileBusy(std::string_view call) const;
  CallResult Run(const Handler& handler, const HandlerOptions& options, std::string_view queue,
                 Message message, unsigned attempt);
  void Enqueue(SentMessage message, unsigned attempt);
  // The registered handler whose queue holds the oldest message, with that queue; nulls when idle.
  std::pair<const Registration*, Queue*> Next();
  bool Transition(std::string_view incident_id, IncidentStatus to, std::string_view reason);

  // Declared first, so destroyed last: the registered handlers are code inside these plugins.
  std::vector<detail::PluginFile> plugins_;
  std::map<std::string, Registration, std::less<>> handlers_;
  std::map<std::string, Queue, std::less<>> queues_;
  std::uint64_t next_sequence_ = 0;
  std::map<std::string, IncidentRecord, std::less<>> incidents_;
  // Per incident, every record as (handler, JSON), in the order they were put.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>, std::less<>> persisted_;
  boost::uuids::random_generator incident_ids_;
  // The result of the handler running now, which receives what it publishes; else nullptr.
  CallResult* running_ = nullptr;
  std::optional<Loading> loading_;

  // The one runtime libworkflow.so forwards to, while a TestRuntime lives.
  static inline Impl* alive_ = nullptr;
};

TestRuntime::Impl::Impl() {
  if (alive_ != nullptr) {
    throw Error(
        "workflow::testing::TestRuntime: another TestRuntime is alive in this process; libworkflow.so "
        "forwards to one runtime at a time, so destroy the first before making a second");
  }
  DiscardUnflushed("before this TestRuntime was made");
  alive_ = this;
  host::InstallRuntime(this);
}

TestRuntime::Impl::~Impl() {
  DiscardUnflushed("while this TestRuntime lived");
  host::InstallRuntime(nullptr);
  alive_ = nullptr;
}

void TestRuntime::Impl::DiscardUnflushed(std::string_view when) {
  if (const std::size_t discarded = host::DiscardProducerMessages(); discarded != 0) {
    Warn(std::to_string(discarded) + " message(s) sent outside a handler " + std::string(when) +
         " were never flushed (workflow::FlushMessages); discarded, so that no other test sees them");
  }
}

void TestRuntime::Impl::RefuseWhileBusy(std::string_view call) const {
  std::string where;
  if (running_ != nullptr) where = "handler " + running_->handler;
  if (loading_) where = "the RegisterHandlers of plugin " + loading_->plugin;
  if (where.empty()) return;
  throw Error("TestRuntime::" + std::string(call) + " was called from " + where +
              ": drive the test runtime from the test itself");
}

void TestRuntime::Impl::RegisterHandler(Handler handler, std::string_view queue,
                                        const HandlerOptions& options) {
  const std::string call = "RegisterHandler(" + handler.name + ", '" + std::string(queue) + "')";
  if (running_ != nullptr) {
    throw RegistrationError(
        call + " was called from handler " + running_->handler +
        ": register handlers only in the plugin's entry point, while the daemon loads it");
  }
  if (queue == kCleanupQueue) {
    throw RegistrationError(call +
                            ": the queue belongs to workflowd's own cleanup stage; choose another name");
  }
  const std::string plugin = loading_ ? loading_->plugin : std::string();
  if (auto taken = handlers_.find(queue); taken != handlers_.end()) {
    const Registration& first = taken->second;
    if (loading_ && std::ranges::find(loading_->queues, queue) != loading_->queues.end()) {
      throw RegistrationError("queue '" + first.queue + "' is registered twice by plugin " + plugin +
                              ": first for handler " + first.handler.name + ", then for handler " +
                              handler.name);
    }
    const auto of = [](const std::string& file) {
      return file.empty() ? std::string() : " of plugin " + file;
    };
    throw RegistrationError("queue '" + first.queue + "' is already taken by handler " + first.handler.name +
                            of(first.plugin) + ", so handler " + handler.name + of(plugin) +
                            " cannot have it");
  }
  handlers_.emplace(std::string(queue),
                    Registration{std::string(queue), std::move(handler), options, plugin});
  if (loading_) loading_->queues.emplace_back(queue);
}

void TestRuntime::Impl::Publish(const std::vector<OutgoingMessage>& messages) {
  if (loading_) {
    throw PublishError(
        "FlushMessages cannot be called while plugins are registering handlers: there is no broker "
        "connection yet");
  }
  for (const OutgoingMessage& message : messages) {
    SentMessage received = Received(message);
    if (running_ != nullptr) running_->sent.push_back(Clone(received));
    Enqueue(std::move(received), 1);
  }
}

std::string TestRuntime::Impl::CreateIncident(std::string_view name, std::string_view kind,
                                              std::string_view comment) {
  std::string id = boost::uuids::to_string(incident_ids_());
  incidents_.emplace(
      id,
      IncidentRecord{
          .id = id, .name = std::string(name), .kind = std::string(kind), .comment = std::string(comment)});
  return id;
}

bool TestRuntime::Impl::Transition(std::string_view incident_id, IncidentStatus to, std::string_view reason) {
  auto incident = incidents_.find(incident_id);
  if (incident == incidents_.end() || IsEnded(incident->second.status)) return false;
  incident->second.status = to;
  incident->second.reason = reason;
  return true;
}

void TestRuntime::Impl::EndIncident(std::string_view incident_id, host::IncidentEnd how,
                                    std::string_view reason) {
  const bool complete = how == host::IncidentEnd::kComplete;
  const std::string call =
      std::string(complete ? "Complete" : "Cancel") + "(" + std::string(incident_id) + ")";
  if (incident_id == kHealthIncident) {
    Warn(call + ": the health pseudo-incident never ends");
    return;
  }
  if (Transition(incident_id, complete ? IncidentStatus::kComplete : IncidentStatus::kCancelled, reason))
    return;
  auto incident = incidents_.find(incident_id);
  Warn(call + ": nothing changed, the incident " +
       (incident != incidents_.end()
            ? "has already ended as " + std::string(ToString(incident->second.status))
            : std::string("is unknown")));
}

void TestRuntime::Impl::PersistPut(std::string_view incident_id, std::string_view handler, std::string json) {
  auto records = persisted_.try_emplace(std::string(incident_id)).first;
  records->second.emplace_back(handler, std::move(json));
}

std::vector<std::string> TestRuntime::Impl::PersistGet(std::string_view incident_id,
                                                       std::string_view handler) {
  std::vector<std::string> found;
  auto records = persisted_.find(incident_id);
  if (records == persisted_.end()) return found;
  for (const auto& [author, json] : records->second) {
    if (handler.empty() || author == handler) found.push_back(json);
  }
  return found;
}

void TestRuntime::Impl::LoadPlugin(const std::filesystem::path& file) {
  RefuseWhileBusy("LoadPlugin");
  detail::PluginFile plugin = detail::OpenPluginFile(file);
  std::string refusal;
  {
    loading_.emplace(Loading{.plugin = file.string(), .queues = {}});
    // A send() made while registering lands here, as in workflowd, and refuses the plugin.
    host::Invocation invocation(kRegisterHandlersSymbol);
    try {
      plugin.register_handlers();
    } catch (const RegistrationError& error) {
      refusal = detail::PluginRefusal(file, "a handler registration was refused", error.what(),
                                      "give every handler a valid queue name that no other handler has");
    } catch (const std::exception& error) {
      refusal = detail::PluginRefusal(file, "RegisterHandlers threw", error.what(),
                                      "fix the cause, or the plugin, and restart workflowd");
    } catch (...) {
      refusal = detail::PluginRefusal(file, "RegisterHandlers threw",
                                      "a non-standard exception, which carries no message",
                                      "make the plugin throw a std::exception that says what went wrong");
    }
    if (refusal.empty() && !invocation.outbox().empty()) {
      refusal = detail::PluginRefusal(file, "RegisterHandlers sent messages",
                                      std::to_string(invocation.outbox().size()) +
                                          " message(s), the first to queue '" +
                                          invocation.outbox().front().queue + "'",
                                      "send messages from handlers, and start incidents with workflowctl");
    }
    if (refusal.empty() && loading_->queues.empty()) {
      refusal = detail::PluginRefusal(file, "registered no handlers",
                                      "RegisterHandlers returned without calling workflow::RegisterHandler",
                                      "register the plugin's handlers there, or remove the file");
    }
  }
  if (!refusal.empty()) {
    // Before the plugin unloads: even destroying a std::function runs code of the plugin that made it.
    for (const std::string& queue : loading_->queues) handlers_.erase(queue);
    loading_.reset();
    throw Error(refusal);
  }
  loading_.reset();
  plugins_.push_back(std::move(plugin));
}

CallResult TestRuntime::Impl::Run(const Handler& handler, const HandlerOptions& options,
                                  std::string_view queue, Message message, unsigned attempt) {
  CallResult result{.queue = std::string(queue),
                    .handler = handler.name,
                    .message_id = std::string(message.message_id()),
                    .incident_id = std::string(message.incident_id()),
                    .attempt = attempt};
  const std::string& incident = result.incident_id;
  if (incident != kHealthIncident) {
    auto found = incidents_.find(incident);
    if (found == incidents_.end() || IsEnded(found->second.status)) {
      result.outcome = Outcome::kNotProcessed;
      result.reason = "incident " + incident + " is " +
                      (found != incidents_.end() ? std::string(ToString(found->second.status)) : "unknown");
      return result;
    }
    if (found->second.status == IncidentStatus::kPending) found->second.status = IncidentStatus::kActive;
  }
  // The daemon delivers the message again as it arrived, not as the failed run left it.
  std::optional<SentMessage> retry;
  if (attempt < options.retry.max_attempts) {
    retry = SentMessage{.queue = std::string(queue),
                        .src_tag = std::string(message.src_tag()),
                        .dest_tag = std::string(message.dest_tag()),
                        .originator = std::string(message.originator()),
                        .message_id = result.message_id,
                        .body = message.Clone()};
  }
  {
    host::Invocation invocation(handler.name);
    RunningHandler running(running_, result);
    bool returned = false;
    try {
      handler.function(message);
      returned = true;
    } catch (const std::exception& error) {
      result.reason = error.what();
    } catch (...) {
      result.reason = "a non-standard exception";
    }
    if (returned) {
      Publish(invocation.outbox());
      return result;
    }
    result.dropped = invocation.outbox().size();
  }
  if (retry) {
    result.outcome = Outcome::kRetried;
    Enqueue(std::move(*retry), attempt + 1);
    return result;
  }
  result.outcome = Outcome::kThrew;
  if (incident != kHealthIncident) {
    Transition(incident, IncidentStatus::kError, "handler " + handler.name + " failed: " + result.reason);
  }
  return result;
}

void TestRuntime::Impl::Enqueue(SentMessage message, unsigned attempt) {
  Queue& queue = queues_.try_emplace(message.queue).first->second;
  queue.push_back(Waiting{.sequence = next_sequence_++, .attempt = attempt, .message = std::move(message)});
}

CallResult TestRuntime::Impl::Call(const Handler& handler, Message message) {
  RefuseWhileBusy("Call");
  const std::string call = "Call(" + handler.name + ")";
  if (!handler.function) throw Error(call + ": the handler function is empty");
  if (message.incident_id().empty()) {
    throw MessageError(call +
                       ": the message has no IncidentID (a string); workflowd dead-letters such a "
                       "message before any handler sees it");
  }
  return Run(handler, HandlerOptions{}, {}, std::move(message), 1);
}

CallResult TestRuntime::Impl::Deliver(std::string_view queue, Message message) {
  RefuseWhileBusy("Deliver");
  const std::string call = "Deliver to '" + std::string(queue) + "'";
  auto registration = handlers_.find(queue);
  if (registration == handlers_.end()) {
    std::string registered;
    for (const auto& [name, unused] : handlers_) registered += (registered.empty() ? "" : ", ") + name;
    throw Error(
        call + ": no handler is registered for this queue" +
        (registered.empty() ? std::string("; load the plugin first") : " (registered: " + registered + ")"));
  }
  if (message.incident_id().empty()) {
    throw MessageError(call +
                       ": the message has no IncidentID (a string); workflowd dead-letters such a "
                       "message before any handler sees it");
  }
  const Registration& found = registration->second;
  return Run(found.handler, found.options, found.queue, std::move(message), 1);
}

void TestRuntime::Impl::Send(std::string_view queue, const Message& message, std::string_view src_tag,
                             std::string_view dest_tag) {
  RefuseWhileBusy("Send");
  // The producer's own outbox, so that this flushes nothing the test enqueued by itself.
  host::Invocation producer(program_invocation_short_name);
  workflow::send(message, queue, src_tag, dest_tag);
  Publish(producer.outbox());
}

std::pair<const TestRuntime::Impl::Registration*, TestRuntime::Impl::Queue*> TestRuntime::Impl::Next() {
  std::pair<const Registration*, Queue*> next{nullptr, nullptr};
  for (const auto& [name, registration] : handlers_) {
    auto queue = queues_.find(name);
    if (queue == queues_.end() || queue->second.empty()) continue;
    if (next.second == nullptr || queue->second.front().sequence < next.second->front().sequence) {
      next = {&registration, &queue->second};
    }
  }
  return next;
}

std::vector<CallResult> TestRuntime::Impl::RunUntilIdle(std::size_t max_deliveries) {
  RefuseWhileBusy("RunUntilIdle");
  std::vector<CallResult> results;
  while (true) {
    auto [registration, queue] = Next();
    if (registration == nullptr) return results;
    if (results.size() == max_deliveries) {
      std::size_t waiting = 0;
      for (const auto& [name, unused] : handlers_) waiting += Queued(name);
      throw Error("RunUntilIdle: still busy after " + std::to_string(max_deliveries) + " deliveries, with " +
                  std::to_string(waiting) + " message(s) waiting for handlers, the next for queue '" +
                  registration->queue +
                  "'; if the workflow is meant to run this long, pass a larger "
                  "max_deliveries, else it sends in a loop");
    }
    Waiting next = std::move(queue->front());
    queue->pop_front();
    results.push_back(Run(registration->handler, registration->options, registration->queue,
                          std::move(next.message.body), next.attempt));
  }
}

std::size_t TestRuntime::Impl::Queued(std::string_view queue) const {
  auto found = queues_.find(queue);
  return found != queues_.end() ? found->second.size() : 0;
}

std::vector<SentMessage> TestRuntime::Impl::Take(std::string_view queue) {
  RefuseWhileBusy("Take");
  std::vector<SentMessage> taken;
  auto found = queues_.find(queue);
  if (found == queues_.end()) return taken;
  taken.reserve(found->second.size());
  for (Waiting& waiting : found->second) taken.push_back(std::move(waiting.message));
  queues_.erase(found);
  return taken;
}

const IncidentRecord& TestRuntime::Impl::Incident(std::string_view incident_id) const {
  auto found = incidents_.find(incident_id);
  if (found == incidents_.end()) {
    throw Error("TestRuntime::Incident: no incident " + std::string(incident_id) +
                " was created in this runtime (with workflow::CreateIncident)");
  }
  return found->second;
}

std::vector<Message> TestRuntime::Impl::Persisted(std::string_view incident_id,
                                                  std::string_view handler) const {
  std::vector<Message> records;
  auto found = persisted_.find(incident_id);
  if (found == persisted_.end()) return records;
  for (const auto& [author, json] : found->second) {
    if (handler.empty() || author == handler) records.push_back(Message::Parse(json));
  }
  return records;
}

TestRuntime::TestRuntime() : impl_(std::make_unique<Impl>()) {}
TestRuntime::~TestRuntime() = default;

void TestRuntime::LoadPlugin(const std::filesystem::path& file) { impl_->LoadPlugin(file); }
CallResult TestRuntime::Call(const Handler& handler, Message message) {
  return impl_->Call(handler, std::move(message));
}
CallResult TestRuntime::Deliver(std::string_view queue, Message message) {
  return impl_->Deliver(queue, std::move(message));
}
void TestRuntime::Send(std::string_view queue, const Message& message, std::string_view src_tag,
                       std::string_view dest_tag) {
  impl_->Send(queue, message, src_tag, dest_tag);
}
std::vector<CallResult> TestRuntime::RunUntilIdle(std::size_t max_deliveries) {
  return impl_->RunUntilIdle(max_deliveries);
}
std::size_t TestRuntime::Queued(std::string_view queue) const { return impl_->Queued(queue); }
std::vector<SentMessage> TestRuntime::Take(std::string_view queue) { return impl_->Take(queue); }
const IncidentRecord& TestRuntime::Incident(std::string_view incident_id) const {
  return impl_->Incident(incident_id);
}
std::vector<Message> TestRuntime::Persisted(std::string_view incident_id, std::string_view handler) const {
  return impl_->Persisted(incident_id, handler);
}

}  // namespace workflow::testing
