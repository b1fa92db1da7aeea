#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include <workflow/outgoing_message.hpp>

#include "amqp_connection.hpp"

namespace workflowd {

struct Registration;

// A delivery on its way to a worker. The tag is only valid on the connection it came from,
// which the generation names: after a reconnect the broker redelivers it under a new tag.
struct Job {
  InboundDelivery delivery;
  std::uint32_t generation = 0;
  const Registration* registration = nullptr;
};

// What becomes of a delivery once its handler has run (or was refused to run).
enum class Verdict {
  kDone,        // publish the outgoing messages; acknowledge once all are confirmed
  kDeadLetter,  // publish the body to the dead-letter queue with the reason; then acknowledge
  kReject,      // too large to keep: reject it, and the broker dead-letters it
  kRetry,       // a transient failure (a FlushMessages the broker refused): deliver it again
  kDelay,       // put it off: republish it through a delay queue, then acknowledge
};

// What a worker decided about one delivery, for the I/O thread to carry out.
struct Settlement {
  std::uint64_t tag = 0;
  std::uint32_t generation = 0;
  const Registration* registration = nullptr;
  Verdict verdict = Verdict::kDone;
  std::vector<workflow::OutgoingMessage> outgoing;
  // Why, for kDeadLetter, kReject and kRetry.
  std::string reason;
  // The delivery's body, kept until its fate is settled: it becomes the dead letter when the
  // handler turns out to have sent to a queue that does not exist, or is republished.
  std::string body;
  // kDelay: how long to wait, the attempt the republished message carries, and what it keeps.
  // message_id also names the message in its dead letter, when known.
  std::chrono::milliseconds delay{0};
  std::int64_t attempt = 0;
  std::string message_id;
  // The tags the delivery came with, for its republished copy or its dead letter (and so for a
  // resend of that).
  std::string src_tag;
  std::string dest_tag;
  // kDeadLetter from the crash-loop guard: the key the message's count stays under, which the
  // dead letter names so that a resend can clear it.
  std::string crash_count_key;
};

// A FlushMessages call from a handler: publish now and tell the caller when all are confirmed.
struct FlushRequest {
  const std::vector<workflow::OutgoingMessage>* messages;
  std::promise<void> confirmed;
};

}  // namespace workflowd
