#include "daemon_runtime.hpp"

namespace workflowd {

void DaemonRuntime::RegisterHandler(workflow::Handler handler, std::string_view queue,
                                    const workflow::HandlerOptions&) {
  throw workflow::RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                                    "') was called outside RegisterHandlers: register handlers "
                                    "only in the plugin's entry point, while the daemon loads it");
}

void DaemonRuntime::Publish(const std::vector<workflow::OutgoingMessage>& messages) {
  dispatcher_.PublishAndWait(messages);
}

std::string DaemonRuntime::CreateIncident(std::string_view name, std::string_view kind,
                                          std::string_view comment) {
  return incidents_.Create(name, kind, comment);
}

void DaemonRuntime::EndIncident(std::string_view incident_id, workflow::host::IncidentEnd how,
                                std::string_view reason) {
  incidents_.End(incident_id, how, reason);
}

void DaemonRuntime::PersistPut(std::string_view incident_id, std::string_view handler, std::string json) {
  incidents_.PersistPut(incident_id, handler, std::move(json));
}

std::vector<std::string> DaemonRuntime::PersistGet(std::string_view incident_id, std::string_view handler) {
  return incidents_.PersistGet(incident_id, handler);
}

}  // namespace workflowd
