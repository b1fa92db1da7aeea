#include "run_handler.hpp"

#include <spdlog/spdlog.h>
#include <workflow/host.hpp>

#include "handler_registry.hpp"

namespace workflowd {
namespace {

Settlement Refuse(Settlement settlement, Verdict verdict, std::string reason) {
  spdlog::warn("queue {}: delivery {} refused, {}: {}", settlement.registration->queue,
               settlement.tag,
               verdict == Verdict::kReject ? "rejected to the dead-letter queue"
                                           : "sent to the dead-letter queue",
               reason);
  settlement.verdict = verdict;
  settlement.reason = std::move(reason);
  return settlement;
}

}  // namespace

Settlement RunHandler(Job&& job) {
  const Registration& registration = *job.registration;
  InboundDelivery& delivery = job.delivery;
  Settlement settlement{.tag = delivery.tag,
                        .generation = job.generation,
                        .registration = &registration,
                        .verdict = Verdict::kDone,
                        .outgoing = {},
                        .reason = {},
                        .body = {}};
  if (delivery.oversized) {
    return Refuse(std::move(settlement), Verdict::kReject,
                  "body of " + std::to_string(delivery.body_size) + " bytes exceeds max_message_bytes");
  }
  settlement.body = std::move(delivery.body);
  std::optional<workflow::Message> message;
  try {
    message = workflow::Message::Parse(settlement.body, std::move(delivery.src_tag),
                                       std::move(delivery.dest_tag));
  } catch (const workflow::MessageError& error) {
    return Refuse(std::move(settlement), Verdict::kDeadLetter, error.what());
  }
  if (message->incident_id().empty()) {
    return Refuse(std::move(settlement), Verdict::kDeadLetter, "body has no IncidentID (a string)");
  }

  workflow::host::Invocation invocation(registration.handler.name);
  auto failed = [&](std::string_view what) {
    spdlog::error("handler {} on queue {} failed for incident {} message {}: {}; its {} unsent "
                  "message(s) are dropped",
                  registration.handler.name, registration.queue, message->incident_id(),
                  message->message_id(), what, invocation.outbox().size());
  };
  try {
    registration.handler.function(*message);
  } catch (const workflow::PublishError& error) {
    // The broker refused what the handler flushed: not the handler's fault, so run it again.
    spdlog::warn("handler {} on queue {}: {}; the delivery will be handled again",
                 registration.handler.name, registration.queue, error.what());
    settlement.verdict = Verdict::kRetry;
    settlement.reason = error.what();
    return settlement;
  } catch (const std::exception& error) {
    failed(error.what());
    return settlement;
  } catch (...) {
    failed("a non-standard exception");
    return settlement;
  }
  spdlog::debug("handler {} handled incident {} message {}, sending {}", registration.handler.name,
                message->incident_id(), message->message_id(), invocation.outbox().size());
  settlement.outgoing = std::move(invocation.outbox());
  return settlement;
}

}  // namespace workflowd
