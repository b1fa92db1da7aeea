#include "cleanup_stage.hpp"

#include <spdlog/spdlog.h>

#include "incident_service.hpp"
#include "retry_later.hpp"

namespace workflowd {

workflow::Handler CleanupStage::handler() {
  return workflow::Handler{std::string(kCleanupQueue), [this](workflow::Message& message) { Run(message); }};
}

void CleanupStage::Run(workflow::Message& message) {
  const std::string_view incident = message.incident_id();
  const bool force = message.Has("force") && message.GetBool("force");
  std::optional<Incident> ended = store_.FindIncident(incident);
  if (!ended || !IsEnded(ended->status)) {
    spdlog::warn("cleanup of incident {}: nothing removed, the incident {}", incident,
                 ended ? "is still " + std::string(ToString(ended->status)) : std::string("is unknown"));
    return;
  }
  if (!force && log_.complete()) {
    // What the log has gathered but not yet committed counts too.
    log_.Flush();
    const std::size_t in_flight = store_.CountInFlight(incident);
    const std::int64_t waited_ms = NowMs() - message.GetInt("requested_at");
    if (in_flight > 0) {
      if (waited_ms < std::chrono::milliseconds(timeout_).count()) {
        throw RetryLater(std::to_string(in_flight) + " message(s) of incident " + std::string(incident) +
                         " still in flight");
      }
      spdlog::warn("cleanup of incident {}: {} message(s) still in flight after {} s; removing its "
                   "records anyway",
                   incident, in_flight, timeout_.count());
    }
  }
  store_.DeleteIncidentState(incident);
  spdlog::info("cleanup of incident {}: persisted records and leases removed", incident);
}

}  // namespace workflowd
