#include "run_handler.hpp"

#include <atomic>

#include <spdlog/spdlog.h>
#include <workflow/host.hpp>

#include "handler_registry.hpp"
#include "incident_service.hpp"
#include "log_context.hpp"
#include "retry_later.hpp"

namespace workflowd {
namespace {

using std::chrono::milliseconds;

// How long a message that must wait (an atomic handler busy, a cleanup not yet possible, the
// store failing) stays in the delay queue: short at first, since a join holds its lease for
// milliseconds, then longer.
constexpr milliseconds kFirstWait{50};
constexpr milliseconds kMaxWait{1000};
static_assert(HandlerRunner::kLocalAtomicWait <= kFirstWait,
              "a run waits in the daemon no longer than its message would in the delay queue");

milliseconds Backoff(milliseconds first, milliseconds max, std::int64_t attempt) {
  milliseconds delay = first;
  for (std::int64_t i = 1; i < attempt && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

Settlement Refuse(Settlement settlement, Verdict verdict, std::string reason) {
  spdlog::warn("queue {}: delivery {} refused, {}: {}", settlement.registration->queue, settlement.tag,
               verdict == Verdict::kReject ? "rejected to the dead-letter queue"
                                           : "sent to the dead-letter queue",
               reason);
  settlement.verdict = verdict;
  settlement.reason = std::move(reason);
  return settlement;
}

// An id for the log row of a message that came without one (from a producer that is not
// workflowd's): a redelivery of it gets a second row.
std::string NewReceiptId() { return "received-" + workflow::host::NewMessageId(); }

// A unique owner for one run's lease: two runs in one process must not share a lease.
std::string LeaseOwner(const std::string& consumer) {
  static std::atomic<std::uint64_t> runs{0};
  return consumer + "#" + std::to_string(runs.fetch_add(1, std::memory_order_relaxed));
}

// Holds an atomic handler's lease for the length of one run.
class Lease {
 public:
  Lease(StateStore& store, std::string_view incident, std::string_view handler, std::string owner)
      : store_(store), incident_(incident), handler_(handler), owner_(std::move(owner)) {}
  bool TryAcquire(std::chrono::seconds duration) {
    held_ = store_.TryAcquireLease(incident_, handler_, owner_, duration);
    return held_;
  }
  ~Lease() {
    if (!held_) return;
    try {
      store_.ReleaseLease(incident_, handler_, owner_);
    } catch (const StateStoreError& error) {
      spdlog::warn("releasing the lease of {} on incident {}: {}; it expires by itself", handler_,
                   incident_, error.what());
    }
  }

 private:
  StateStore& store_;
  std::string_view incident_;
  std::string_view handler_;
  std::string owner_;
  bool held_ = false;
};

}  // namespace

// One delivery's run: what it needs to log, put off or settle.
class HandlerRunner::Run {
 public:
  Run(HandlerRunner& runner, const Registration& registration, std::int64_t attempt,
      workflow::Message& message, std::string message_id, Settlement& settlement,
      const std::atomic<std::uint32_t>& current_generation)
      : runner_(runner),
        registration_(registration),
        attempt_(attempt),
        message_(message),
        message_id_(std::move(message_id)),
        settlement_(settlement),
        current_generation_(current_generation) {}

  Settlement Handle();
  // Its job was of a lost connection and did not run: see HandlerRunner::Handle.
  bool dropped() const { return dropped_; }

 private:
  void Record(MessageStatus status, std::string comment = {});
  Settlement PutOff(milliseconds delay, std::string why);
  Settlement Invoke();

  HandlerRunner& runner_;
  const Registration& registration_;
  std::int64_t attempt_;
  workflow::Message& message_;
  std::string message_id_;
  Settlement& settlement_;
  const std::atomic<std::uint32_t>& current_generation_;
  bool dropped_ = false;
};

HandlerRunner::HandlerRunner(StateStore& store, IncidentCache& incidents, MessageLog& log,
                             const StateSettings& settings, CrashLoopGuard& guard, std::string consumer,
                             milliseconds local_atomic_wait)
    : store_(store),
      incidents_(incidents),
      log_(log),
      settings_(settings),
      guard_(guard),
      consumer_(std::move(consumer)),
      atomic_runs_(local_atomic_wait) {}

void HandlerRunner::RefreshIncidentStatuses() noexcept {
  try {
    incidents_.RefreshVersion();
  } catch (const std::exception& error) {
    // The workers read the version themselves, and report the store's failure there.
    spdlog::warn("reading the state store's change version: {}", error.what());
  }
}

Settlement HandlerRunner::Handle(Job&& job, const std::atomic<std::uint32_t>& current_generation) {
  InboundDelivery& delivery = job.delivery;
  Settlement settlement{.tag = delivery.tag, .generation = job.generation, .registration = job.registration};
  if (delivery.oversized) {
    return Refuse(std::move(settlement), Verdict::kReject,
                  "body of " + std::to_string(delivery.body_size) + " bytes exceeds max_message_bytes");
  }
  settlement.body = std::move(delivery.body);
  settlement.src_tag = std::move(delivery.src_tag);
  settlement.dest_tag = std::move(delivery.dest_tag);
  std::optional<workflow::Message> message;
  try {
    message = workflow::Message::Parse(settlement.body, settlement.src_tag, settlement.dest_tag);
  } catch (const workflow::MessageError& error) {
    settlement.message_id = std::move(delivery.message_id);  // for the dead letter's listing
    return Refuse(std::move(settlement), Verdict::kDeadLetter, error.what());
  }
  std::string message_id =
      !delivery.message_id.empty() ? std::move(delivery.message_id) : std::string(message->message_id());
  if (message->incident_id().empty()) {
    settlement.message_id = std::move(message_id);
    return Refuse(std::move(settlement), Verdict::kDeadLetter, "body has no IncidentID (a string)");
  }
  const std::string& queue = job.registration->queue;
  CrashLoopGuard::Admission admission = guard_.Admit(queue, delivery.redelivered, message_id, settlement.body);
  if (!admission.refusal.empty()) {
    settlement.message_id = std::move(message_id);
    settlement.crash_count_key = std::move(admission.key);
    return Refuse(std::move(settlement), Verdict::kDeadLetter, std::move(admission.refusal));
  }
  if (message_id.empty()) message_id = NewReceiptId();
  Run run(*this, *job.registration, delivery.attempt, *message, std::move(message_id), settlement, current_generation);
  Settlement handled = run.Handle();
  // A dropped run did not finish: its message's count goes on with the redelivery.
  if (!run.dropped()) guard_.Finished(queue, admission);
  return handled;
}

void HandlerRunner::Run::Record(MessageStatus status, std::string comment) {
  // Built-in stages keep no log: their messages are the daemon's own.
  if (registration_.builtin || !runner_.log_.Keeps(status)) return;
  MessageEvent event{.message_id = message_id_,
                     .incident_id = std::string(message_.incident_id()),
                     .status = status,
                     .at = NowMs(),
                     .comment = std::move(comment)};
  // The row's description comes with its first event; a later one only moves the status.
  if (status == MessageStatus::kProcessing || !runner_.log_.Keeps(MessageStatus::kProcessing)) {
    event.originator = message_.originator();
    event.destination = registration_.queue;
    event.src_tag = message_.src_tag();
    event.dest_tag = message_.dest_tag();
    event.body_prefix = settlement_.body.substr(0, kBodyPrefixBytes);
    event.consumer = runner_.consumer_;
  }
  runner_.log_.Record(std::move(event));
}

Settlement HandlerRunner::Run::PutOff(milliseconds delay, std::string why) {
  settlement_.verdict = Verdict::kDelay;
  settlement_.reason = std::move(why);
  settlement_.delay = delay;
  settlement_.attempt = attempt_ + 1;
  settlement_.message_id = message_id_;
  return std::move(settlement_);
}

Settlement HandlerRunner::Run::Handle() {
  const LogScope log_scope({message_.incident_id(), message_id_, registration_.handler.name, registration_.queue});
  try {
    Record(MessageStatus::kProcessing);
    const std::string_view incident = message_.incident_id();
    const auto busy = [&] {
      return PutOff(Backoff(kFirstWait, kMaxWait, attempt_ + 1),
                    "atomic handler " + registration_.handler.name + " is busy with this incident");
    };
    // Before the incident's status is read: the run waited for may end the incident.
    std::optional<LocalAtomicRuns::Hold> local;
    if (registration_.options.atomic) {
      // NUL-separated: a handler name with a NUL in it could only make unrelated runs wait, never overlap.
      local.emplace(runner_.atomic_runs_, registration_.handler.name + '\0' + std::string(incident));
      if (!local->held()) return busy();
      // The wait may have outlived a reconnect, after which the broker delivers the message
      // again: dropped, as the I/O thread would drop what it settles.
      if (settlement_.generation != current_generation_.load(std::memory_order_relaxed)) {
        dropped_ = true;
        return std::move(settlement_);
      }
    }
    // Built-in stages run for ended incidents: that is what they are for.
    if (!registration_.builtin && incident != workflow::kHealthIncident) {
      std::optional<IncidentStatus> status = runner_.incidents_.Status(incident);
      if (!status || IsEnded(*status)) {
        std::string why = "incident " + std::string(incident) + " is " +
                          (status ? std::string(ToString(*status)) : std::string("unknown"));
        spdlog::info("queue {}: message {} not processed: {}", registration_.queue, message_id_, why);
        Record(MessageStatus::kNotProcessed, std::move(why));
        return std::move(settlement_);
      }
      if (*status == IncidentStatus::kPending) {
        runner_.incidents_.Transition(incident, IncidentStatus::kActive);
      }
    }
    if (!registration_.options.atomic) return Invoke();
    Lease lease(runner_.store_, incident, registration_.handler.name, LeaseOwner(runner_.consumer_));
    if (!lease.TryAcquire(runner_.settings_.lease)) return busy();
    return Invoke();
  } catch (const StateStoreError& error) {
    spdlog::error("queue {}: the state store failed: {}; the delivery waits and comes back",
                  registration_.queue, error.what());
    return PutOff(kMaxWait, error.what());
  }
}

Settlement HandlerRunner::Run::Invoke() {
  const std::string& handler = registration_.handler.name;
  const std::string& queue = registration_.queue;
  const std::string_view incident = message_.incident_id();
  workflow::host::Invocation invocation(handler);
  std::string failure;
  try {
    const HandlerCall call(registration_.metrics->handling);
    registration_.handler.function(message_);
  } catch (const workflow::PublishError& error) {
    // The broker refused what the handler flushed: not the handler's fault, so run it again.
    spdlog::warn("handler {} on queue {}: {}; the delivery will be handled again", handler, queue, error.what());
    settlement_.verdict = Verdict::kRetry;
    settlement_.reason = error.what();
    return std::move(settlement_);
  } catch (const RetryLater& error) {
    return PutOff(Backoff(kFirstWait, kMaxWait, attempt_ + 1), error.what());
  } catch (const std::exception& error) {
    failure = error.what();
  } catch (...) {
    failure = "a non-standard exception";
  }

  if (failure.empty()) {
    Record(MessageStatus::kComplete);
    settlement_.outgoing = std::move(invocation.outbox());
    return std::move(settlement_);
  }
  registration_.metrics->handling.errors.Add();
  const workflow::RetryPolicy& retry = registration_.options.retry;
  const std::size_t dropped = invocation.outbox().size();
  if (attempt_ + 1 < static_cast<std::int64_t>(retry.max_attempts)) {
    milliseconds delay = Backoff(retry.first_delay, retry.max_delay, attempt_ + 1);
    spdlog::warn("handler {} on queue {} failed for incident {} message {} (attempt {} of {}): {}; "
                 "its {} unsent message(s) are dropped, retrying in {} ms",
                 handler, queue, incident, message_id_, attempt_ + 1, retry.max_attempts, failure, dropped,
                 delay.count());
    return PutOff(delay, failure);
  }
  spdlog::error("handler {} on queue {} failed for incident {} message {}: {}; its {} unsent message(s) "
                "are dropped",
                handler, queue, incident, message_id_, failure, dropped);
  Record(MessageStatus::kError, failure);
  invocation.outbox().clear();
  if (incident != workflow::kHealthIncident) {
    runner_.incidents_.Transition(incident, IncidentStatus::kError, "handler " + handler + " failed: " + failure);
    // Also when the incident had already ended (the handler ended it, then threw): the cleanup
    // its ending enqueued was dropped with the rest.
    IncidentService::ScheduleCleanup(incident);
  }
  settlement_.outgoing = std::move(invocation.outbox());
  return std::move(settlement_);
}

}  // namespace workflowd
