#include "dispatcher.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstring>
#include <random>

#include <spdlog/spdlog.h>
#include <workflow/errors.hpp>

#include "incident_service.hpp"

namespace workflowd {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kConsumerTagPrefix = "workflowd.";
constexpr milliseconds kFirstBackoff{500};
constexpr milliseconds kMaxBackoff{30000};
// Broker events handled per pass before the mailbox gets a turn, so neither side starves.
constexpr int kEventsPerPass = 256;

const QueueSettings& QueueSettingsFor(const Settings& settings, const std::string& queue) {
  static const QueueSettings kDefault;
  auto found = settings.queues.find(queue);
  return found == settings.queues.end() ? kDefault : found->second;
}

// The delay queues: a message put off waits in the shortest one at least as long as its delay
// (the longest one, past that). Each has one length, since a queue expires only its oldest
// message: a shorter wait behind a longer one would wait as long.
constexpr milliseconds kDelayTiers[] = {
    milliseconds(50),   milliseconds(100),  milliseconds(250),   milliseconds(500),   milliseconds(1000),
    milliseconds(2500), milliseconds(5000), milliseconds(15000), milliseconds(60000), milliseconds(300000)};

std::string DelayQueueName(milliseconds tier) { return "workflowd.delay." + std::to_string(tier.count()); }

milliseconds DelayTierFor(milliseconds delay) {
  for (milliseconds tier : kDelayTiers) {
    if (tier >= delay) return tier;
  }
  return std::end(kDelayTiers)[-1];
}

std::string ConsumerTag(std::size_t index) {
  return std::string(kConsumerTagPrefix) + std::to_string(index);
}

}  // namespace

Dispatcher::Dispatcher(const Settings& settings, const HandlerRegistry& registry, HandlerRunner& runner,
                       MessageLog& log, DispatcherEvents& events, DaemonMetrics& metrics)
    : settings_(settings),
      registry_(registry),
      log_(log),
      events_(events),
      runner_(runner),
      metrics_(metrics),
      prefetch_(settings.broker.prefetch),
      workers_(settings.workers, runner, mailbox_) {}

Dispatcher::~Dispatcher() = default;

int Dispatcher::Run(int signal_fd) {
  std::minstd_rand jitter(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
  milliseconds backoff = kFirstBackoff;
  while (!stopping_) {
    try {
      RunSession(signal_fd);
      break;
    } catch (const BrokerError& error) {
      DropSession(error.what());
      if (stopping_) break;
      // Jitter spreads the reconnects of many daemons after a broker restart.
      milliseconds delay = backoff + milliseconds(jitter() % (backoff.count() / 2 + 1));
      spdlog::error("broker: {}; reconnecting in {} ms", error.what(), delay.count());
      events_.OnBrokerLost(error.what(), delay);
      // Handlers may still flush meanwhile; they are answered after the reconnect. Waiting for
      // the broker is not being stuck: the loop passes go on.
      for (Clock::time_point until = Clock::now() + delay; !stopping_ && Clock::now() < until;) {
        auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
        pollfd signal{signal_fd, POLLIN, 0};
        if (poll(&signal, 1, static_cast<int>(std::clamp<milliseconds::rep>(left.count(), 0, 1000))) > 0 &&
            ReadSignal(signal_fd)) {
          stopping_ = true;
          events_.OnStopping();
        }
        events_.OnLoopPass(Clock::now(), 0);
      }
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
  FailWaitingFlushes("workflowd is shutting down");
  spdlog::info("workflowd stopped");
  return 0;
}

void Dispatcher::RunSession(int signal_fd) {
  connection_ = std::make_unique<AmqpConnection>(settings_.broker);
  workers_.set_generation(++generation_);
  connection_->set_body_limit(settings_.max_message_bytes);
  Attach();

  const milliseconds idle_wait =
      settings_.broker.heartbeat.count() > 0
          ? std::min<milliseconds>(std::chrono::duration_cast<milliseconds>(settings_.broker.heartbeat) / 2,
                                   milliseconds(1000))
          : milliseconds(1000);
  for (;;) {
    WaitForInput(signal_fd, idle_wait);
    // What this pass publishes and acknowledges leaves in a few full segments at the uncork.
    connection_->Cork(true);
    DrainBroker();
    DrainMailbox();
    SettleFinished();
    SendAcks(stopping_);
    connection_->Cork(false);
    events_.OnLoopPass(last_settled_, in_flight_);
    if (stopping_) {
      if (in_flight_ == 0 && tracker_.empty()) break;
      if (Clock::now() >= stop_deadline_) {
        spdlog::warn("shutdown timeout of {} ms reached: {} delivery(ies) left unacknowledged, "
                     "the broker will deliver them again",
                     settings_.shutdown_timeout.count(), in_flight_);
        handlers_abandoned_ = in_flight_ > 0;
        break;
      }
    }
  }
  DropSession("workflowd is shutting down");
}

void Dispatcher::Attach() {
  const auto& registrations = registry_.registrations();
  const std::string& dead_letters = settings_.dead_letter_queue;
  // What the broker itself drops from a queue (a rejected oversized body, a message past a
  // quorum queue's x-delivery-limit) lands in the dead-letter queue too.
  for (const Registration& registration : registrations) {
    connection_->DeclareQueue(registration.queue, QueueSettingsFor(settings_, registration.queue),
                              dead_letters);
  }
  for (const auto& [queue, queue_settings] : settings_.queues) {
    if (registry_.Find(queue) == nullptr && queue != dead_letters) {
      connection_->DeclareQueue(queue, queue_settings, dead_letters);
    }
  }
  connection_->DeclareQueue(dead_letters, QueueSettingsFor(settings_, dead_letters));
  for (milliseconds tier : kDelayTiers) connection_->DeclareDelay(DelayQueueName(tier), tier);
  // Before consuming, or the broker sends without limit.
  connection_->SetPrefetch(prefetch_);
  for (std::size_t i = 0; i < registrations.size(); ++i) {
    connection_->Consume(registrations[i].queue, ConsumerTag(i));
  }
  spdlog::info("connected to {}:{} vhost {}; consuming {} queue(s) with {} worker(s), prefetch {}",
               settings_.broker.host, settings_.broker.port, settings_.broker.vhost,
               registrations.size(), settings_.workers, prefetch_);
  events_.OnConsuming(registrations.size());
}

void Dispatcher::WaitForInput(int signal_fd, milliseconds timeout) {
  if (connection_->HasBufferedInput()) timeout = milliseconds(0);
  const auto wait_until = [&](Clock::time_point deadline) {
    // Rounded up: a wait of 0 ms before the deadline would spin.
    auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    timeout = std::clamp(left, milliseconds(0), timeout);
  };
  if (stopping_) wait_until(stop_deadline_);
  if (std::optional<Clock::time_point> held = acks_.HeldUntil()) wait_until(*held);
  pollfd fds[] = {{connection_->fd(), POLLIN, 0}, {mailbox_.fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
  if (poll(fds, std::size(fds), static_cast<int>(timeout.count())) > 0 &&
      (fds[2].revents & POLLIN) != 0 && ReadSignal(signal_fd)) {
    BeginStop();
  }
}

bool Dispatcher::ReadSignal(int signal_fd) {
  signalfd_siginfo info;
  if (read(signal_fd, &info, sizeof info) != sizeof info) return false;
  int signal = static_cast<int>(info.ssi_signo);
  if (signal == SIGHUP) {
    if (std::optional<std::uint16_t> prefetch = events_.OnReload()) {
      prefetch_ = *prefetch;
      if (connection_) connection_->SetPrefetch(prefetch_);
    }
    return false;
  }
  spdlog::info("received {}", strsignal(signal));
  return signal == SIGTERM || signal == SIGINT;
}

void Dispatcher::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = Clock::now() + settings_.shutdown_timeout;
  events_.OnStopping();
  spdlog::info("stopping: no new deliveries; waiting up to {} ms for {} in flight",
               settings_.shutdown_timeout.count(), in_flight_);
  for (std::size_t i = 0; i < registry_.registrations().size(); ++i) {
    connection_->CancelConsumer(ConsumerTag(i));
  }
}

void Dispatcher::DrainBroker() {
  for (int i = 0; i < kEventsPerPass; ++i) {
    std::optional<BrokerEvent> event = connection_->NextEvent(milliseconds(0));
    if (!event) break;
    if (auto* delivery = std::get_if<InboundDelivery>(&*event)) {
      OnDelivery(std::move(*delivery));
    } else if (auto* confirm = std::get_if<PublishConfirm>(&*event)) {
      tracker_.OnConfirm(*confirm, finished_);
    } else {
      tracker_.OnReturn(std::get<ReturnedMessage>(*event));
    }
  }
  if (jobs_.empty()) return;
  // Once for the whole pass, after its deliveries arrived: a change committed before any of them
  // (workflowctl cancel) makes their incidents' statuses be read again.
  runner_.RefreshIncidentStatuses();
  workers_.SubmitAll(jobs_);
}

void Dispatcher::DrainMailbox() {
  mailbox_.TakeAll(settlements_, flushes_);
  for (Settlement& settlement : settlements_) {
    // A delivery of a lost connection: the broker has already put it back.
    if (settlement.generation != generation_) continue;
    --in_flight_;
    last_settled_ = Clock::now();
    Settle(std::move(settlement));
  }
  settlements_.clear();
  // Each request leaves flushes_ as it is taken on, so that a broker failure halfway answers
  // the rest exactly once (DropSession).
  for (FlushRequest*& flush : flushes_) PublishFlush(std::exchange(flush, nullptr));
  flushes_.clear();
}

void Dispatcher::OnDelivery(InboundDelivery&& delivery) {
  std::string_view tag = delivery.consumer_tag;
  std::size_t index = registry_.registrations().size();
  if (tag.starts_with(kConsumerTagPrefix)) {
    tag.remove_prefix(kConsumerTagPrefix.size());
    std::from_chars(tag.data(), tag.data() + tag.size(), index);
  }
  acks_.Deliver(delivery.tag, Clock::now());
  if (index >= registry_.registrations().size()) {
    spdlog::error("delivery for unknown consumer '{}' put back", delivery.consumer_tag);
    Requeue(delivery.tag);
    return;
  }
  ++in_flight_;
  registry_.registrations()[index].metrics->dispatch.Received(delivery.redelivered);
  jobs_.push_back(Job{std::move(delivery), generation_, &registry_.registrations()[index]});
}

void Dispatcher::Settle(Settlement&& settlement) {
  switch (settlement.verdict) {
    case Verdict::kDeadLetter:
      PublishDeadLetter(std::move(settlement));
      return;
    case Verdict::kReject:
      settlement.registration->metrics->dispatch.dead_letters.Add();
      connection_->Reject(settlement.tag);
      acks_.Closed(settlement.tag);
      return;
    case Verdict::kRetry:
      Requeue(settlement.tag);
      return;
    case Verdict::kDelay:
      PublishDelayed(std::move(settlement));
      return;
    case Verdict::kDone:
      break;
  }
  if (settlement.outgoing.empty()) {
    acks_.AckLater(settlement.tag);
    return;
  }
  auto owner = tracker_.Open(PublishOwner{std::move(settlement), nullptr, false, {}});
  for (const workflow::OutgoingMessage& message : tracker_.payload(owner).settlement.outgoing) {
    Publish(owner, message);
  }
  tracker_.Seal(owner, finished_);
}

void Dispatcher::Publish(Tracker::OwnerId owner, const workflow::OutgoingMessage& message) {
  std::uint64_t tag = connection_->Publish(
      message.queue, message.body,
      {.message_id = message.message_id,
       .headers = {{"src_tag", message.src_tag}, {"dest_tag", message.dest_tag}}});
  tracker_.Add(owner, tag, message.message_id);
}

void Dispatcher::PublishDeadLetter(Settlement&& settlement) {
  settlement.registration->metrics->dispatch.dead_letters.Add();
  auto owner = tracker_.Open(PublishOwner{std::move(settlement), nullptr, true, {}});
  PublishOwner& payload = tracker_.payload(owner);
  const Settlement& dead = payload.settlement;
  payload.dead_letter_id = "dead-letter:" + std::to_string(generation_) + ":" + std::to_string(dead.tag);
  std::uint64_t tag = connection_->Publish(
      settings_.dead_letter_queue, dead.body,
      {.message_id = payload.dead_letter_id,
       .headers = {{"x-workflowd-reason", dead.reason},
                   {"x-workflowd-queue", dead.registration->queue},
                   {"x-workflowd-message-id", dead.message_id},
                   {"x-workflowd-crash-count-key", dead.crash_count_key},
                   {"src_tag", dead.src_tag},
                   {"dest_tag", dead.dest_tag}},
       .timestamp = NowMs() / 1000});
  tracker_.Add(owner, tag, payload.dead_letter_id);
  tracker_.Seal(owner, finished_);
}

void Dispatcher::PublishDelayed(Settlement&& settlement) {
  auto owner = tracker_.Open(PublishOwner{std::move(settlement), nullptr, false, {}});
  const Settlement& delayed = tracker_.payload(owner).settlement;
  spdlog::debug("queue {}: delivery {} waits {} ms (attempt {}): {}", delayed.registration->queue,
                delayed.tag, delayed.delay.count(), delayed.attempt, delayed.reason);
  std::uint64_t tag = connection_->Publish(
      delayed.registration->queue, delayed.body,
      {.message_id = delayed.message_id,
       .headers = {{"src_tag", delayed.src_tag}, {"dest_tag", delayed.dest_tag}},
       .attempt = delayed.attempt,
       .exchange = DelayQueueName(DelayTierFor(delayed.delay))});
  tracker_.Add(owner, tag, delayed.message_id);
  tracker_.Seal(owner, finished_);
}

void Dispatcher::RecordSent(const std::vector<workflow::OutgoingMessage>& messages) {
  if (!log_.Keeps(MessageStatus::kSent)) return;
  const std::int64_t now = NowMs();
  for (const workflow::OutgoingMessage& message : messages) {
    if (message.queue == kCleanupQueue) continue;  // the daemon's own traffic
    log_.Record(MessageEvent{.message_id = message.message_id,
                             .incident_id = message.incident_id,
                             .status = MessageStatus::kSent,
                             .at = now,
                             .originator = message.originator,
                             .destination = message.queue,
                             .src_tag = message.src_tag,
                             .dest_tag = message.dest_tag,
                             .body_prefix = message.body.substr(0, kBodyPrefixBytes)});
  }
}

void Dispatcher::PublishFlush(FlushRequest* flush) {
  auto owner = tracker_.Open(PublishOwner{{}, flush, false, {}});
  for (const workflow::OutgoingMessage& message : *flush->messages) Publish(owner, message);
  tracker_.Seal(owner, finished_);
}

void Dispatcher::SettleFinished() {
  // A dead letter published here may finish at once and join the list: loop until it is empty.
  while (!finished_.empty()) {
    Tracker::Finished result = std::move(finished_.back());
    finished_.pop_back();
    PublishOwner owner = std::move(tracker_.payload(result.owner));
    tracker_.Release(result.owner);
    metrics_.publish_confirm.Observe(Clock::now() - result.opened);
    std::string failure;
    if (result.nacked) {
      failure = "the broker refused a message (basic.nack)";
    } else if (!result.returned_queue.empty()) {
      failure = "sent a message to queue '" + result.returned_queue +
                "', which does not exist; declare it in the config's queues section or register "
                "a handler for it";
    }

    if (owner.flush != nullptr) {
      if (failure.empty()) RecordSent(*owner.flush->messages);
      Answer(owner.flush, failure);
      continue;
    }
    Settlement& settlement = owner.settlement;
    const std::string& queue = settlement.registration->queue;
    if (failure.empty()) {
      RecordSent(settlement.outgoing);
      acks_.AckLater(settlement.tag);
    } else if (result.nacked || owner.dead_letter) {
      // A broker-side failure, or no dead-letter queue: put the delivery back for a later try.
      spdlog::error("queue {}: delivery {} put back: {}", queue, settlement.tag, failure);
      Requeue(settlement.tag);
    } else {
      // Unroutable: the workflow is wrong and a retry cannot help. Keep the input for an operator.
      spdlog::error("queue {}: handler {}", queue, failure);
      settlement.reason = "handler " + failure;
      settlement.outgoing.clear();
      PublishDeadLetter(std::move(settlement));
    }
  }
}

void Dispatcher::SendAcks(bool flush) {
  acks_.Take(Clock::now(), flush, due_acks_);
  for (const AckWindow::Ack& ack : due_acks_) connection_->Ack(ack.tag, ack.multiple);
  due_acks_.clear();
}

void Dispatcher::Requeue(std::uint64_t tag) {
  connection_->Requeue(tag);
  acks_.Closed(tag);
}

void Dispatcher::Answer(FlushRequest* flush, const std::string& failure) {
  // The caller frees the request as soon as its future is ready: set the promise off it.
  std::promise<void> confirmed = std::move(flush->confirmed);
  if (failure.empty()) {
    confirmed.set_value();
  } else {
    confirmed.set_exception(std::make_exception_ptr(workflow::PublishError("FlushMessages: " + failure)));
  }
}

void Dispatcher::DropSession(const std::string& reason) {
  // Every FlushMessages caller still waiting is answered exactly once: those finished but not
  // yet settled, those published and unconfirmed, and those not yet published.
  const std::string failure = "the connection to the broker is gone: " + reason;
  for (const Tracker::Finished& result : finished_) {
    if (FlushRequest* flush = tracker_.payload(result.owner).flush) Answer(flush, failure);
  }
  finished_.clear();
  tracker_.ForEachOpen([&](PublishOwner& owner) {
    if (owner.flush != nullptr) Answer(owner.flush, failure);
  });
  tracker_ = Tracker{};
  acks_.Reset();
  due_acks_.clear();
  jobs_.clear();
  for (FlushRequest* flush : flushes_) {
    if (flush != nullptr) Answer(flush, failure);
  }
  flushes_.clear();
  settlements_.clear();
  in_flight_ = 0;
  if (connection_ && stopping_) {
    try {
      connection_->Close();
    } catch (const BrokerError& error) {
      spdlog::warn("closing the broker connection: {}", error.what());
    }
  }
  connection_.reset();
}

void Dispatcher::FailWaitingFlushes(const std::string& reason) {
  for (FlushRequest* flush : mailbox_.Close()) Answer(flush, reason);
}

void Dispatcher::PublishAndWait(const std::vector<workflow::OutgoingMessage>& messages) {
  FlushRequest request{&messages, {}};
  std::future<void> confirmed = request.confirmed.get_future();
  if (!mailbox_.Post(&request)) throw workflow::PublishError("FlushMessages: workflowd is shutting down");
  confirmed.get();
}

}  // namespace workflowd
