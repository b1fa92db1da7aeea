#include "incident_service.hpp"

#include <spdlog/spdlog.h>
#include <workflow/workflow.hpp>

#include "message_log.hpp"

namespace workflowd {

std::string IncidentService::Create(std::string_view name, std::string_view kind,
                                    std::string_view comment) {
  return store_.CreateIncident(kind, name, comment).id;
}

void IncidentService::End(std::string_view incident_id, workflow::host::IncidentEnd how,
                          std::string_view reason) {
  const bool complete = how == workflow::host::IncidentEnd::kComplete;
  const char* call = complete ? "Complete" : "Cancel";
  if (incident_id == workflow::kHealthIncident) {
    spdlog::warn("{}({}): the health pseudo-incident never ends", call, incident_id);
    return;
  }
  const IncidentStatus to = complete ? IncidentStatus::kComplete : IncidentStatus::kCancelled;
  if (!incidents_.Transition(incident_id, to, reason)) {
    std::optional<IncidentStatus> status = incidents_.Status(incident_id);
    spdlog::warn("{}({}): nothing changed, the incident {}", call, incident_id,
                 status ? "has already ended as " + std::string(ToString(*status)) : std::string("is unknown"));
    return;
  }
  spdlog::info("incident {} {}{}{}", incident_id, ToString(to), reason.empty() ? "" : ": ", reason);
  ScheduleCleanup(incident_id);
}

void IncidentService::ScheduleCleanup(std::string_view incident_id) {
  workflow::Message cleanup = workflow::Message::ForIncident(incident_id);
  cleanup.Set("requested_at", NowMs());
  workflow::send(cleanup, kCleanupQueue, {}, {}, "workflowd");
}

void IncidentService::PersistPut(std::string_view incident_id, std::string_view handler, std::string json) {
  store_.PersistPut(incident_id, handler, json);
}

std::vector<std::string> IncidentService::PersistGet(std::string_view incident_id, std::string_view handler) {
  return handler.empty() ? store_.PersistGetAll(incident_id) : store_.PersistGet(incident_id, handler);
}

}  // namespace workflowd
