#pragma once

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

// What a worker decided about one delivery, for the I/O thread to carry out: publish the
// outgoing messages, wait for their confirms, then acknowledge the delivery.
struct Settlement {
  std::uint64_t tag = 0;
  std::uint32_t generation = 0;
  std::vector<workflow::OutgoingMessage> outgoing;
  // Non-empty: the delivery is refused (not JSON, no IncidentID, too large, or its handler
  // sent to a queue that does not exist) and goes to the dead-letter queue with this reason.
  std::string dead_letter_reason;
  // The delivery's body and queue, kept until its fate is settled, for a dead letter.
  std::string body;
  std::string queue;
};

// A FlushMessages call from a handler: publish now and tell the caller when all are confirmed.
struct FlushRequest {
  const std::vector<workflow::OutgoingMessage>* messages;
  std::promise<void> confirmed;
};

}  // namespace workflowd
