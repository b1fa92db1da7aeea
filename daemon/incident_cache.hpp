#pragma once

#include <atomic>
#include <chrono>
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
// store again. The version itself is read once per I/O pass that brought deliveries
// (RefreshVersion), so that a delivery which arrives after `workflowctl cancel` returned is never
// handled; and a worker reads it again itself when it is older than kMaxVersionAge, so that a
// delivery which waited for a worker while another process ended its incident is checked
// against a version at most that old.
// An ended status never changes again, so it is kept for good. An unknown incident is not
// remembered: it may be created a moment later, and hostile ids must not fill the memory.
// Thread-safe.
class IncidentCache {
 public:
  static constexpr std::chrono::milliseconds kMaxVersionAge{5};

  explicit IncidentCache(StateStore& store) : store_(store) {}

  // The incident's status, or nullopt when the store does not know it. Throws StateStoreError.
  std::optional<IncidentStatus> Status(std::string_view id);
  // Reads the store's ChangeVersion for the Status calls that follow (the I/O thread, once its
  // deliveries are in hand). Throws StateStoreError.
  void RefreshVersion();
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

  using Clock = std::chrono::steady_clock;

  // The version last read, refreshed when older than kMaxVersionAge.
  std::uint64_t RecentVersion();
  void Remember(std::string_view id, IncidentStatus status, std::uint64_t version);

  StateStore& store_;
  // Written after version_ (release), read before it (acquire): a reader that sees a new time
  // sees the version read at that time, or a newer one.
  std::atomic<std::uint64_t> version_{0};
  // Long ago at first, so that the first look reads the version.
  std::atomic<Clock::rep> version_read_at_{(Clock::now() - std::chrono::hours(1)).time_since_epoch().count()};
  std::mutex refresh_mutex_;  // RefreshVersion's
  std::mutex mutex_;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace workflowd
