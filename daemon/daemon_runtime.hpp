#pragma once

#include <workflow/host.hpp>

#include "dispatcher.hpp"
#include "incident_service.hpp"

namespace workflowd {

// What libworkflow.so forwards to while workflowd runs handlers: FlushMessages goes through
// the dispatcher's connection, incidents and Persist to the state store; registration is over
// once the plugins are loaded.
class DaemonRuntime final : public workflow::host::Runtime {
 public:
  DaemonRuntime(Dispatcher& dispatcher, IncidentService& incidents)
      : dispatcher_(dispatcher), incidents_(incidents) {}

  void RegisterHandler(workflow::Handler handler, std::string_view queue,
                       const workflow::HandlerOptions& options) override;
  void Publish(const std::vector<workflow::OutgoingMessage>& messages) override;
  std::string CreateIncident(std::string_view name, std::string_view kind, std::string_view comment) override;
  void EndIncident(std::string_view incident_id, workflow::host::IncidentEnd how, std::string_view reason) override;
  void PersistPut(std::string_view incident_id, std::string_view handler, std::string json) override;
  std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler) override;

 private:
  Dispatcher& dispatcher_;
  IncidentService& incidents_;
};

}  // namespace workflowd
