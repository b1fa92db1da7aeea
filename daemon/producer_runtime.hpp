#pragma once

#include <workflow/host.hpp>

#include "amqp_connection.hpp"
#include "settings.hpp"

namespace workflowd {

// The runtime of a producer program such as workflowctl: FlushMessages publishes on the
// program's own connection and waits for the broker's confirms. Single-threaded.
class ProducerRuntime final : public workflow::host::Runtime {
 public:
  // Connects now; throws BrokerError.
  explicit ProducerRuntime(const BrokerSettings& broker);

  void RegisterHandler(workflow::Handler handler, std::string_view queue) override;
  // Throws workflow::PublishError naming the first message refused or unroutable.
  void Publish(const std::vector<workflow::OutgoingMessage>& messages) override;

 private:
  AmqpConnection connection_;
  std::chrono::milliseconds confirm_timeout_;
};

}  // namespace workflowd
