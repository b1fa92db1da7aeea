#include "state_store.hpp"

namespace workflowd {

std::string_view ToString(IncidentStatus status) {
  switch (status) {
    case IncidentStatus::kPending: return "PENDING";
    case IncidentStatus::kActive: return "ACTIVE";
    case IncidentStatus::kComplete: return "COMPLETE";
    case IncidentStatus::kCancelled: return "CANCELLED";
    case IncidentStatus::kError: return "ERROR";
  }
  return "UNKNOWN";
}

std::string_view ToString(MessageStatus status) {
  switch (status) {
    case MessageStatus::kSent: return "SENT";
    case MessageStatus::kProcessing: return "PROCESSING";
    case MessageStatus::kComplete: return "COMPLETE";
    case MessageStatus::kError: return "ERROR";
    case MessageStatus::kNotProcessed: return "NOT_PROCESSED";
  }
  return "UNKNOWN";
}

std::optional<IncidentStatus> ParseIncidentStatus(std::string_view text) {
  for (const IncidentStatus status : {IncidentStatus::kPending, IncidentStatus::kActive, IncidentStatus::kComplete,
                                      IncidentStatus::kCancelled, IncidentStatus::kError}) {
    if (ToString(status) == text) return status;
  }
  return std::nullopt;
}

bool IsEnded(IncidentStatus status) {
  return status == IncidentStatus::kComplete || status == IncidentStatus::kCancelled ||
         status == IncidentStatus::kError;
}

}  // namespace workflowd
