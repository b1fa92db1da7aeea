#pragma once

#include <workflow/host.hpp>

#include "dispatcher.hpp"

namespace workflowd {

// What libworkflow.so forwards to while workflowd runs handlers: FlushMessages goes through
// the dispatcher's connection; registration is over once the plugins are loaded.
class DaemonRuntime final : public workflow::host::Runtime {
 public:
  explicit DaemonRuntime(Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

  void RegisterHandler(workflow::Handler handler, std::string_view queue) override;
  void Publish(const std::vector<workflow::OutgoingMessage>& messages) override;

 private:
  Dispatcher& dispatcher_;
};

}  // namespace workflowd
