#pragma once

#include <workflow/host.hpp>

#include "amqp_connection.hpp"
#include "incident_service.hpp"
#include "settings.hpp"

namespace workflowd {

// The runtime of a producer program such as workflowctl: FlushMessages publishes on the
// program's own connection and waits for the broker's confirms; incidents go to the state
// store when the program opened one. Single-threaded.
class ProducerRuntime final : public workflow::host::Runtime {
 public:
  // Connects now; throws BrokerError. incidents may be null: then CreateIncident, Complete and
  // Cancel say that this program has no state store.
  ProducerRuntime(const BrokerSettings& broker, IncidentService* incidents);

  void RegisterHandler(workflow::Handler handler, std::string_view queue,
                       const workflow::HandlerOptions& options) override;
  // Throws workflow::PublishError naming the first message refused or unroutable.
  void Publish(const std::vector<workflow::OutgoingMessage>& messages) override;
  std::string CreateIncident(std::string_view name, std::string_view kind, std::string_view comment) override;
  void EndIncident(std::string_view incident_id, workflow::host::IncidentEnd how, std::string_view reason) override;

 private:
  IncidentService* incidents_;
  AmqpConnection connection_;
  std::chrono::milliseconds confirm_timeout_;
};

}  // namespace workflowd
