#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace workflowd {

// What workflowd remembers across deliveries and processes: incidents, the message log,
// persisted handler records and the leases of atomic handlers. One interface, so that a
// PostgreSQL backend shared by daemons on several hosts is a second implementation.
//
// Implementations are thread-safe. Times are milliseconds since the Unix epoch (UTC).

enum class IncidentStatus { kPending, kActive, kComplete, kCancelled, kError };
enum class MessageStatus { kSent, kProcessing, kComplete, kError, kNotProcessed };

std::string_view ToString(IncidentStatus status);
std::string_view ToString(MessageStatus status);
std::optional<IncidentStatus> ParseIncidentStatus(std::string_view text);  // "ACTIVE", ...
bool IsEnded(IncidentStatus status);  // COMPLETE, CANCELLED or ERROR

struct Incident {
  std::string id;  // a UUID
  std::string kind;
  std::string name;
  IncidentStatus status = IncidentStatus::kPending;
  std::string comment;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

struct IncidentFilter {
  std::optional<IncidentStatus> status;
  std::optional<std::string> kind;
  std::size_t limit = 100;  // newest first
};

// One step in a message's life. A SENT event carries the description of the message; a
// PROCESSING event for a message with no row yet (from a producer that writes none) carries it
// too, and creates the row. Events may arrive out of order (the sender's batch after the
// receiver's): a row's status only moves forward, SENT < PROCESSING < a final status.
struct MessageEvent {
  std::string message_id;
  std::string incident_id;
  MessageStatus status = MessageStatus::kSent;
  std::int64_t at = 0;
  std::string originator;
  std::string destination;  // the queue
  std::string src_tag;
  std::string dest_tag;
  std::string body_prefix;  // the first bytes of the body
  std::string consumer;     // PROCESSING: which daemon and handler took it
  std::string comment;      // ERROR, NOT_PROCESSED: why (ignored with another status)
};

struct MessageRecord {
  std::string message_id;
  std::string incident_id;
  MessageStatus status = MessageStatus::kSent;
  std::string originator;
  std::string destination;
  std::string src_tag;
  std::string dest_tag;
  std::string body_prefix;
  std::string consumer;
  std::string comment;
  std::optional<std::int64_t> sent_at;
  std::optional<std::int64_t> processing_at;
  std::optional<std::int64_t> finished_at;  // COMPLETE, ERROR or NOT_PROCESSED
};

// Folds a batch of events into one partial row per message, in the order each message first
// appears, by the rule a store applies when it merges an event into a row: the status moves only
// forward (SENT < PROCESSING < a final status) and takes its comment along; a description field
// fills in where still empty; each timestamp is set once. A store writing the rows instead of the
// events ends with the same table, in fewer writes.
std::vector<MessageRecord> FoldMessageEvents(std::span<const MessageEvent> events);

class StateStore {
 public:
  virtual ~StateStore() = default;

  // A new incident, PENDING, with a fresh UUID.
  virtual Incident CreateIncident(std::string_view kind, std::string_view name,
                                  std::string_view comment = {}) = 0;
  virtual std::optional<Incident> FindIncident(std::string_view id) = 0;
  // Moves a PENDING or ACTIVE incident to `to` (ACTIVE only from PENDING), with the comment.
  // Returns false, changing nothing, when the incident is unknown or has already ended.
  virtual bool TransitionIncident(std::string_view id, IncidentStatus to, std::string_view comment = {}) = 0;
  virtual std::vector<Incident> ListIncidents(const IncidentFilter& filter) = 0;

  // Applies a batch of message events in one transaction.
  virtual void RecordMessages(std::span<const MessageEvent> events) = 0;
  // An incident's message log, oldest first.
  virtual std::vector<MessageRecord> MessageLog(std::string_view incident_id) = 0;
  // How many of the incident's messages are SENT or PROCESSING.
  virtual std::size_t CountInFlight(std::string_view incident_id) = 0;

  // Persisted records, per (incident, handler), returned in the order they were put.
  virtual void PersistPut(std::string_view incident_id, std::string_view handler, std::string_view json) = 0;
  virtual std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler) = 0;
  // Every handler's records of the incident, in the order they were put.
  virtual std::vector<std::string> PersistGetAll(std::string_view incident_id) = 0;

  // Takes the lease of an atomic handler on an incident for `duration`: true when it was free,
  // expired, or already held by owner (then renewed). Works across processes sharing the store.
  virtual bool TryAcquireLease(std::string_view incident_id, std::string_view handler,
                               std::string_view owner, std::chrono::milliseconds duration) = 0;
  // Gives the lease up if owner holds it.
  virtual void ReleaseLease(std::string_view incident_id, std::string_view handler, std::string_view owner) = 0;

  // Removes an ended incident's persisted records and leases (its row and log stay).
  virtual void DeleteIncidentState(std::string_view incident_id) = 0;

  // A number that stays the same for as long as nobody, in this process or another, commits a
  // change to the store: a cheap check for caches, made on every delivery.
  virtual std::uint64_t ChangeVersion() = 0;

  // The crash-loop guard's count of a message's deliveries on a queue that its handler has not
  // finished: adds one, durably (a crash right after must not lose it), and returns the count.
  // A count that did not move for kUnfinishedDeliveryExpiry starts again from one: a crash loop
  // comes round in seconds, and the same key a day later (an identical body without an id, say)
  // is not the same loop. (A handler that runs longer than that before it crashes the process
  // is not stopped: it crashes once a day at most.) Expired counts are dropped, not kept.
  virtual std::int64_t CountUnfinishedDelivery(std::string_view queue, std::string_view message_key) = 0;
  static constexpr std::chrono::milliseconds kUnfinishedDeliveryExpiry = std::chrono::hours(24);
  // The handler finished with the message, or its dead letter was sent back: its count goes.
  virtual void ForgetUnfinishedDeliveries(std::string_view queue, std::string_view message_key) = 0;
};

// Thrown by a store for a failure of the store itself (I/O, corruption, a schema too new).
class StateStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace workflowd
