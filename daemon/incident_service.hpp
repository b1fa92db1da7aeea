#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <workflow/host.hpp>

#include "incident_cache.hpp"
#include "state_store.hpp"

namespace workflowd {

// The built-in stage that removes an ended incident's persisted records and leases.
inline constexpr std::string_view kCleanupQueue = "_Cleanup";

// What the SDK's incident and Persist calls do, over the state store: shared by workflowd's
// runtime and by producer programs such as workflowctl.
class IncidentService {
 public:
  IncidentService(StateStore& store, IncidentCache& incidents) : store_(store), incidents_(incidents) {}

  std::string Create(std::string_view name, std::string_view kind, std::string_view comment);
  // Ends the incident and enqueues its cleanup with send(), on this thread: inside a handler
  // it goes out with the handler's messages; a producer flushes it. Ending an incident that
  // has already ended, or is unknown, changes nothing and logs a warning.
  void End(std::string_view incident_id, workflow::host::IncidentEnd how, std::string_view reason);
  void PersistPut(std::string_view incident_id, std::string_view handler, std::string json);
  std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler);

  // Enqueues the cleanup of an ended incident (idempotent: cleaning twice does no harm).
  static void ScheduleCleanup(std::string_view incident_id);

 private:
  StateStore& store_;
  IncidentCache& incidents_;
};

}  // namespace workflowd
