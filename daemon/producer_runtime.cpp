#include "producer_runtime.hpp"

#include <workflow/errors.hpp>

#include "publish_tracker.hpp"

namespace workflowd {

ProducerRuntime::ProducerRuntime(const BrokerSettings& broker, IncidentService* incidents)
    : incidents_(incidents), connection_(broker), confirm_timeout_(broker.connect_timeout) {}

std::string ProducerRuntime::CreateIncident(std::string_view name, std::string_view kind,
                                            std::string_view comment) {
  if (incidents_ == nullptr) return Runtime::CreateIncident(name, kind, comment);
  return incidents_->Create(name, kind, comment);
}

void ProducerRuntime::EndIncident(std::string_view incident_id, workflow::host::IncidentEnd how,
                                  std::string_view reason) {
  if (incidents_ == nullptr) return Runtime::EndIncident(incident_id, how, reason);
  incidents_->End(incident_id, how, reason);
}

void ProducerRuntime::RegisterHandler(workflow::Handler handler, std::string_view queue,
                                      const workflow::HandlerOptions&) {
  throw workflow::RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                                    "'): a producer program cannot register handlers");
}

void ProducerRuntime::Publish(const std::vector<workflow::OutgoingMessage>& messages) {
  // One owner per message, so a failure names the message it belongs to.
  PublishTracker<const workflow::OutgoingMessage*> tracker;
  std::vector<PublishTracker<const workflow::OutgoingMessage*>::Finished> finished;
  try {
    for (const workflow::OutgoingMessage& message : messages) {
      auto owner = tracker.Open(&message);
      std::uint64_t tag = connection_.Publish(
          message.queue, message.body,
          {.message_id = message.message_id,
           .headers = {{"src_tag", message.src_tag}, {"dest_tag", message.dest_tag}}});
      tracker.Add(owner, tag, message.message_id);
      tracker.Seal(owner, finished);
    }
    auto deadline = std::chrono::steady_clock::now() + confirm_timeout_;
    std::size_t confirmed = 0;
    while (confirmed < messages.size()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        throw workflow::PublishError("FlushMessages: the broker did not confirm " +
                                     std::to_string(messages.size() - confirmed) + " message(s) within " +
                                     std::to_string(confirm_timeout_.count()) + " ms");
      }
      std::optional<BrokerEvent> event = connection_.NextEvent(left);
      if (!event) continue;
      if (auto* confirm = std::get_if<PublishConfirm>(&*event)) {
        tracker.OnConfirm(*confirm, finished);
      } else if (auto* returned = std::get_if<ReturnedMessage>(&*event)) {
        tracker.OnReturn(*returned);
      }
      for (const auto& result : finished) {
        const workflow::OutgoingMessage& message = *tracker.payload(result.owner);
        if (result.nacked) {
          throw workflow::PublishError("FlushMessages: the broker refused message " +
                                       message.message_id + " for queue '" + message.queue + "'");
        }
        if (!result.returned_queue.empty()) {
          throw workflow::PublishError("FlushMessages: queue '" + message.queue +
                                       "' does not exist (message " + message.message_id +
                                       " was returned unroutable)");
        }
        tracker.Release(result.owner);
        ++confirmed;
      }
      finished.clear();
    }
  } catch (const BrokerError& error) {
    throw workflow::PublishError(std::string("FlushMessages: ") + error.what());
  }
}

}  // namespace workflowd
