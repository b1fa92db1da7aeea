#include "run_handler.hpp"

#include <spdlog/spdlog.h>
#include <workflow/host.hpp>

#include "handler_registry.hpp"

namespace workflowd {
namespace {

std::string HeaderOr(const InboundDelivery& delivery, std::string_view name) {
  auto found = delivery.headers.find(name);
  return found == delivery.headers.end() ? std::string() : found->second;
}

Settlement DeadLetter(Job& job, Settlement settlement, std::string reason) {
  spdlog::warn("queue {}: delivery {} refused, sent to the dead-letter queue: {}",
               job.registration->queue, job.delivery.tag, reason);
  settlement.dead_letter_reason = std::move(reason);
  settlement.body = std::move(job.delivery.body);
  return settlement;
}

}  // namespace

Settlement RunHandler(Job&& job) {
  const Registration& registration = *job.registration;
  Settlement settlement{.tag = job.delivery.tag,
                        .generation = job.generation,
                        .outgoing = {},
                        .dead_letter_reason = {},
                        .body = {},
                        .queue = registration.queue};
  if (job.delivery.oversized) {
    return DeadLetter(job, std::move(settlement),
                      "body of " + std::to_string(job.delivery.body_size) +
                          " bytes exceeds max_message_bytes");
  }
  std::optional<workflow::Message> message;
  try {
    message = workflow::Message::Parse(job.delivery.body, HeaderOr(job.delivery, "src_tag"),
                                       HeaderOr(job.delivery, "dest_tag"));
  } catch (const workflow::MessageError& error) {
    return DeadLetter(job, std::move(settlement), error.what());
  }
  if (message->incident_id().empty()) {
    return DeadLetter(job, std::move(settlement), "body has no IncidentID (a string)");
  }

  workflow::host::Invocation invocation(registration.handler.name);
  try {
    registration.handler.function(*message);
  } catch (const std::exception& error) {
    spdlog::error("handler {} on queue {} failed for incident {} message {}: {}; its {} unsent "
                  "message(s) are dropped",
                  registration.handler.name, registration.queue, message->incident_id(),
                  message->message_id(), error.what(), invocation.outbox().size());
    return settlement;
  } catch (...) {
    spdlog::error("handler {} on queue {} failed for incident {} message {}: a non-standard "
                  "exception; its {} unsent message(s) are dropped",
                  registration.handler.name, registration.queue, message->incident_id(),
                  message->message_id(), invocation.outbox().size());
    return settlement;
  }
  spdlog::debug("handler {} handled incident {} message {}, sending {}", registration.handler.name,
                message->incident_id(), message->message_id(), invocation.outbox().size());
  settlement.outgoing = std::move(invocation.outbox());
  settlement.body = std::move(job.delivery.body);
  return settlement;
}

}  // namespace workflowd
