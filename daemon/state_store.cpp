#include "state_store.hpp"

#include <unordered_map>

namespace workflowd {
namespace {

int Rank(MessageStatus status) {
  switch (status) {
    case MessageStatus::kSent: return 0;
    case MessageStatus::kProcessing: return 1;
    default: return 2;  // final
  }
}

void FillIfEmpty(std::string& field, const std::string& value) {
  if (field.empty()) field = value;
}

void SetOnce(std::optional<std::int64_t>& field, std::int64_t at) {
  if (!field) field = at;
}

void MoveStatus(MessageRecord& row, const MessageEvent& event) {
  row.status = event.status;
  // Only a final status has a reason.
  row.comment = Rank(event.status) == 2 ? event.comment : std::string();
}

void Merge(MessageRecord& row, const MessageEvent& event) {
  if (Rank(event.status) > Rank(row.status)) MoveStatus(row, event);
  FillIfEmpty(row.incident_id, event.incident_id);
  FillIfEmpty(row.originator, event.originator);
  FillIfEmpty(row.destination, event.destination);
  FillIfEmpty(row.src_tag, event.src_tag);
  FillIfEmpty(row.dest_tag, event.dest_tag);
  FillIfEmpty(row.body_prefix, event.body_prefix);
  FillIfEmpty(row.consumer, event.consumer);
  switch (Rank(event.status)) {
    case 0: SetOnce(row.sent_at, event.at); break;
    case 1: SetOnce(row.processing_at, event.at); break;
    default: SetOnce(row.finished_at, event.at); break;
  }
}

}  // namespace

std::vector<MessageRecord> FoldMessageEvents(std::span<const MessageEvent> events) {
  std::vector<MessageRecord> rows;
  rows.reserve(events.size());
  // Keyed by views into the events, which outlive the map.
  std::unordered_map<std::string_view, std::size_t> row_of;
  row_of.reserve(events.size());
  for (const MessageEvent& event : events) {
    auto [found, added] = row_of.try_emplace(event.message_id, rows.size());
    if (added) {
      MessageRecord& row = rows.emplace_back();
      row.message_id = event.message_id;
      MoveStatus(row, event);
    }
    Merge(rows[found->second], event);
  }
  return rows;
}

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
