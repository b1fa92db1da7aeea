#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "state_store.hpp"

namespace workflowd {

// The incident statuses that every delivery is checked against, kept in memory so that a busy
// daemon does not read the store for each message when nothing changed.
//
// An entry holds while the store's ChangeVersion is the one it was read at: a commit anywhere
// (workflowctl cancel, another daemon, this daemon's message log) makes the next look read the
// store again, so a delivery that arrives after `workflowctl cancel` returned is never handled.
// An ended status never changes again, so it is kept for good. An unknown incident is not
// remembered: it may be created a moment later, and hostile ids must not fill the memory.
// Thread-safe.
class IncidentCache {
 public:
  explicit IncidentCache(StateStore& store) : store_(store) {}

  // The incident's status, or nullopt when the store does not know it. Throws StateStoreError.
  // The cached status holds when it was read at `version`, the store's ChangeVersion as the
  // caller last read it (the I/O thread reads it once for a pass's deliveries); without one,
  // the version is read here.
  std::optional<IncidentStatus> Status(std::string_view id, std::optional<std::uint64_t> version);
  std::optional<IncidentStatus> Status(std::string_view id) { return Status(id, std::nullopt); }
  // StateStore::TransitionIncident, remembering the new status.
  bool Transition(std::string_view id, IncidentStatus to, std::string_view comment = {});

 private:
  struct Entry {
    IncidentStatus status;
    std::uint64_t version;  // the store's ChangeVersion before it was read
  };
  // Lookups by string_view, without making a string per delivery.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
  };
  // Past this many incidents the cache starts again empty: a bound, not a policy.
  static constexpr std::size_t kMaxEntries = 100000;

  void Remember(std::string_view id, IncidentStatus status, std::uint64_t version);

  StateStore& store_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace workflowd
