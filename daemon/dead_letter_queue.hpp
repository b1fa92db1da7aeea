#pragma once

// The dead-letter queue seen from workflowctl: list what is in it without taking it out, and send
// one message back to the queue it came from.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "amqp_connection.hpp"

namespace workflowd {

// How much of each body a listing keeps: enough for an excerpt, and for the MessageID of a
// message whose dead letter names none.
inline constexpr std::uint64_t kDeadLetterBodyKeptBytes = 64 * 1024;

// One dead letter. Those workflowd publishes carry x-workflowd-reason, x-workflowd-queue and
// x-workflowd-message-id headers, the src_tag and dest_tag the message came with, and a
// timestamp; those of the crash-loop guard also x-workflowd-crash-count-key. Those the broker
// dead-lettered itself (a body workflowd rejected as too large, one past a quorum queue's
// x-delivery-limit) carry its x-death. Every field comes from the wire: clean it before printing.
struct DeadLetter {
  std::string message_id;  // the original message's id; empty when nothing names one
  std::string queue;       // the queue it was dead-lettered from, where a resend goes
  std::string reason;
  std::optional<std::int64_t> dead_lettered_at_ms;
  std::string body;  // at most what was kept of it
  std::uint64_t body_size = 0;
  std::string src_tag;
  std::string dest_tag;
  std::string crash_count_key;  // what the crash-loop guard counts it under in queue, if it refused it
};

DeadLetter DescribeDeadLetter(const FetchedMessage& message);

// Browsing or resending found nothing to work on, or the broker refused the resend.
class DeadLetterError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The first `limit` messages of queue, oldest first. Each is taken unacknowledged (basic.get)
// and all are put back at the end, in their places, so the queue keeps them (they come back
// flagged redelivered). Throws BrokerError.
std::vector<DeadLetter> BrowseDeadLetters(AmqpConnection& connection, std::string_view queue, std::size_t limit);

// Publishes the first dead letter of queue whose message id is message_id to its queue, waits
// for the broker's confirm (at most confirm_timeout), and only then acknowledges the dead letter,
// so that a failure anywhere leaves it in the dead-letter queue (on a throw, what was taken goes
// back when the caller's connection closes, unacknowledged). before_publish runs once the
// letter is found, just before its copy is published: what must be ready before the copy can be
// delivered goes there. Returns what was resent. Throws DeadLetterError (no such message id, no
// queue to send it to, refused or unroutable) or BrokerError.
DeadLetter ResendDeadLetter(AmqpConnection& connection, std::string_view queue, std::string_view message_id,
                            std::chrono::milliseconds confirm_timeout,
                            const std::function<void(const DeadLetter&)>& before_publish);

}  // namespace workflowd
