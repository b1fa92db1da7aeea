#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <amqp.h>

#include "broker_error.hpp"
#include "settings.hpp"

namespace workflowd {

// The header that counts how often a delivery was put off (retried, or waiting for an atomic
// handler), carried through the delay queues.
inline constexpr std::string_view kAttemptHeader = "x-workflowd-attempt";

// The most string headers one publish carries (the attempt header comes on top).
inline constexpr std::size_t kMaxPublishHeaders = 7;

// What one publish carries besides its body.
struct PublishOptions {
  std::string_view message_id;
  // AMQP string headers, at most kMaxPublishHeaders (empty ones count, though they are left out).
  // Each caller names a fixed list, so a call with too many throws at its first use, in tests.
  std::initializer_list<std::pair<std::string_view, std::string_view>> headers;
  // The x-workflowd-attempt header, when above zero.
  std::int64_t attempt = 0;
  // Empty: the default exchange, which routes by queue name.
  std::string_view exchange;
  // The AMQP timestamp property, seconds since the epoch, when above zero.
  std::int64_t timestamp = 0;
};

// A message the broker delivered to one of our consumers.
struct InboundDelivery {
  std::uint64_t tag = 0;
  std::string consumer_tag;
  bool redelivered = false;
  // Empty when the body exceeded the size limit; body_size still says how large it was.
  std::string body;
  std::uint64_t body_size = 0;
  bool oversized = false;
  // The src_tag and dest_tag headers, when the sender gave them.
  std::string src_tag;
  std::string dest_tag;
  std::string message_id;  // the AMQP message_id property
  std::int64_t attempt = 0;  // the x-workflowd-attempt header
};

// A message taken from a queue with basic.get and not yet acknowledged: Ack, Requeue or Reject
// it by its tag.
struct FetchedMessage {
  std::uint64_t tag = 0;
  // The first body_limit bytes of the body (see AmqpConnection::Get); body_size is its length.
  std::string body;
  std::uint64_t body_size = 0;
  std::string message_id;      // the AMQP message_id property
  std::int64_t timestamp = 0;  // the AMQP timestamp property, seconds; 0 when not set
  // The headers whose values are strings, and those of the latest x-death entry (the broker's
  // record of its latest dead-lettering), as "x-death.queue", "x-death.reason".
  std::map<std::string, std::string, std::less<>> text_headers;
  std::int64_t death_time = 0;  // the latest x-death entry's time, seconds; 0 when none
};

// The broker confirmed (ack) or refused (nack) our publishes up to tag.
struct PublishConfirm {
  std::uint64_t tag = 0;
  bool multiple = false;
  bool ack = true;
};

// A mandatory publish the broker could not route to any queue; a confirm follows it.
struct ReturnedMessage {
  std::string routing_key;
  std::string reply_text;
  std::string message_id;
};

using BrokerEvent = std::variant<InboundDelivery, PublishConfirm, ReturnedMessage>;

// One AMQP connection with one channel, in publisher-confirm mode. rabbitmq-c connections are
// not thread-safe: an AmqpConnection belongs to the thread that created it, and every call
// must come from that thread. Every failure throws BrokerError and leaves the connection dead.
class AmqpConnection {
 public:
  // Connects, logs in, opens the channel and turns on publisher confirms.
  explicit AmqpConnection(const BrokerSettings& settings);
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  // Declares a durable queue with the given options. With a dead_letter_queue, what the
  // broker drops from the queue (a rejected message, one past x-delivery-limit) goes there,
  // unless the options name another dead-letter target.
  void DeclareQueue(std::string_view queue, const QueueSettings& settings,
                    std::string_view dead_letter_queue = {});
  // A durable fanout exchange bound to a durable queue that holds each message for ttl, then
  // dead-letters it through the default exchange under the routing key it was published with:
  // publishing to the exchange with a queue's name delivers to that queue ttl later.
  void DeclareDelay(std::string_view name, std::chrono::milliseconds ttl);
  void SetPrefetch(std::uint16_t count);
  void Consume(std::string_view queue, std::string_view consumer_tag);
  void CancelConsumer(std::string_view consumer_tag);

  // Publishes persistent and mandatory, with queue as the routing key (through the default
  // exchange unless options name another). Returns the publish sequence number its confirm
  // will carry.
  std::uint64_t Publish(std::string_view queue, std::string_view body, const PublishOptions& options);
  // Acknowledges the delivery, or with multiple every unacknowledged one up to it.
  void Ack(std::uint64_t delivery_tag, bool multiple = false);
  // Puts a delivery back in its queue, to be delivered again.
  void Requeue(std::uint64_t delivery_tag);
  // Refuses a delivery for good: the broker dead-letters it (see DeclareQueue).
  void Reject(std::uint64_t delivery_tag);

  // Takes the next ready message of queue (basic.get), unacknowledged, keeping at most
  // body_limit bytes of its body; nothing when the queue is empty.
  std::optional<FetchedMessage> Get(std::string_view queue, std::uint64_t body_limit);

  // Waits up to timeout (zero: not at all) for the next event. Also services heartbeats, so
  // the owner must call it at least every half heartbeat. Throws BrokerError when the broker
  // closed the channel or connection, or the socket failed.
  std::optional<BrokerEvent> NextEvent(std::chrono::milliseconds timeout);
  // Whether NextEvent can return without reading the socket.
  bool HasBufferedInput() const;
  // The socket, to wait on with poll() next to other descriptors.
  int fd() const;

  // Deliveries larger than this many bytes arrive with oversized set and no body.
  void set_body_limit(std::uint64_t bytes) { body_limit_ = bytes; }

  // While corked, what the calls send gathers in the socket and goes out in full segments at
  // the uncork: a batch of publishes and acks costs the broker a few reads, not one per frame.
  void Cork(bool corked);

  // Closes the channel and connection politely; further calls throw.
  void Close();

 private:
  static constexpr amqp_channel_t kChannel = 1;

  // Throw BrokerError when the last RPC or call failed. `what` is a string, or a callable
  // that makes one: the per-message calls build their message only when it is needed.
  template <class What>
  void CheckRpc(const What& what);
  template <class What>
  void Check(int status, const What& what);
  [[noreturn]] void FailClosed(const amqp_frame_t& frame);
  InboundDelivery ReadDelivery(const amqp_basic_deliver_t& deliver);
  ReturnedMessage ReadReturn(const amqp_basic_return_t& returned);
  // Reads the content header and body frames that follow a deliver or return. Keeps at most
  // body_limit bytes; a larger body is read and thrown away.
  struct Content {
    std::string body;
    std::uint64_t body_size = 0;
    bool oversized = false;
    std::string src_tag;
    std::string dest_tag;
    std::string message_id;
    std::int64_t attempt = 0;
  };
  Content ReadContent(std::uint64_t body_limit);
  amqp_frame_t WaitContentHeader();
  // Reads body frames for a body of size bytes, appending the first `keep` bytes to body.
  void ReadBody(std::uint64_t size, std::uint64_t keep, std::string& body);
  amqp_frame_t WaitContentFrame();

  amqp_connection_state_t state_;
  std::string peer_;  // host:port/vhost, for messages
  std::chrono::milliseconds rpc_timeout_;
  std::uint64_t next_publish_tag_ = 1;
  std::uint64_t body_limit_ = UINT64_MAX;
  bool open_ = false;
};

}  // namespace workflowd
