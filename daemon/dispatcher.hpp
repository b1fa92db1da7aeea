#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <workflow/outgoing_message.hpp>

#include "ack_window.hpp"
#include "amqp_connection.hpp"
#include "handler_registry.hpp"
#include "dispatcher_events.hpp"
#include "mailbox.hpp"
#include "message_log.hpp"
#include "metrics.hpp"
#include "publish_tracker.hpp"
#include "settings.hpp"
#include "worker_pool.hpp"

namespace workflowd {

// The daemon's I/O side. Run() owns the broker connection on the calling thread: it consumes
// every registered queue, hands deliveries to the worker pool, publishes what handlers sent
// with publisher confirms, and acknowledges each delivery only after its messages are
// confirmed. When the broker is lost it reconnects with capped backoff; deliveries of the dead
// connection are not acknowledged on the new one, the broker redelivers them.
class Dispatcher {
 public:
  // Handlers run through runner; what they send is recorded in log once confirmed; events hears
  // of connects, losses, stops, reloads and each pass of the loop; metrics counts what only the
  // dispatcher sees.
  Dispatcher(const Settings& settings, const HandlerRegistry& registry, HandlerRunner& runner,
             MessageLog& log, DispatcherEvents& events, DaemonMetrics& metrics);
  ~Dispatcher();

  // Runs until SIGTERM or SIGINT arrives on signal_fd (a signalfd), then stops consuming,
  // lets in-flight handlers finish within the shutdown timeout, publishes, acknowledges and
  // closes. Returns the process exit code.
  int Run(int signal_fd);

  // Lets running handlers finish and joins the workers; no handler runs after it returns.
  void StopWorkers() { workers_.Stop(); }
  // Whether Run gave up waiting for handlers at the shutdown timeout: they are still running,
  // and StopWorkers would wait for them.
  bool handlers_abandoned() const { return handlers_abandoned_; }

  // For FlushMessages in a handler (any thread but the I/O thread): publishes now and returns
  // once every message is confirmed. Throws workflow::PublishError.
  void PublishAndWait(const std::vector<workflow::OutgoingMessage>& messages);

 private:
  // Who is waiting for a group of publishes.
  struct PublishOwner {
    Settlement settlement;            // a delivery to settle once its messages are confirmed
    FlushRequest* flush = nullptr;    // or a FlushMessages call to wake
    bool dead_letter = false;         // the publish is the delivery's dead letter
    std::string dead_letter_id;       // its message id, to match a return
  };
  using Tracker = PublishTracker<PublishOwner>;

  // One connection's life, until stopped on request; throws BrokerError if the broker is lost.
  void RunSession(int signal_fd);
  void Attach();
  void WaitForInput(int signal_fd, std::chrono::milliseconds timeout);
  bool ReadSignal(int signal_fd);
  void BeginStop();
  void DrainBroker();
  void DrainMailbox();
  void OnDelivery(InboundDelivery&& delivery);
  void Settle(Settlement&& settlement);
  void PublishDeadLetter(Settlement&& settlement);
  void PublishDelayed(Settlement&& settlement);
  // Records SENT for what an owner published, once the broker confirmed it.
  void RecordSent(const std::vector<workflow::OutgoingMessage>& messages);
  void PublishFlush(FlushRequest* flush);
  void Publish(Tracker::OwnerId owner, const workflow::OutgoingMessage& message);
  // Acknowledges, puts back or dead-letters what finished_ holds; wakes finished flushes.
  void SettleFinished();
  // Sends the acknowledgements that are due (flush: all of them, as the session ends).
  void SendAcks(bool flush);
  void Requeue(std::uint64_t tag);
  // Answers a FlushMessages caller: confirmed when failure is empty, else a PublishError.
  static void Answer(FlushRequest* flush, const std::string& failure);
  // Ends the session (closing the connection politely when stopping) and forgets its state;
  // its FlushMessages callers get a PublishError.
  void DropSession(const std::string& reason);
  // After the last session: fails whatever still waits.
  void FailWaitingFlushes(const std::string& reason);

  const Settings& settings_;
  const HandlerRegistry& registry_;
  MessageLog& log_;
  DispatcherEvents& events_;
  HandlerRunner& runner_;
  DaemonMetrics& metrics_;
  std::uint16_t prefetch_;  // as configured, or as a reload changed it
  Mailbox mailbox_;
  WorkerPool workers_;

  // The current session.
  std::unique_ptr<AmqpConnection> connection_;
  std::uint32_t generation_ = 0;
  Tracker tracker_;
  AckWindow acks_;
  std::size_t in_flight_ = 0;  // deliveries handed to workers, not yet settled
  std::chrono::steady_clock::time_point last_settled_ = std::chrono::steady_clock::now();
  bool stopping_ = false;
  bool handlers_abandoned_ = false;
  std::chrono::steady_clock::time_point stop_deadline_;

  // Reused buffers, so the loop does not allocate per pass.
  std::vector<Job> jobs_;  // this pass's deliveries, handed to the workers together
  std::vector<Settlement> settlements_;
  std::vector<FlushRequest*> flushes_;
  std::vector<Tracker::Finished> finished_;
  std::vector<AckWindow::Ack> due_acks_;
};

}  // namespace workflowd
