#include "incident_cache.hpp"

namespace workflowd {

void IncidentCache::RefreshVersion() {
  // One at a time: a slower read that began earlier must not overwrite a newer version.
  const std::lock_guard lock(refresh_mutex_);
  // The time first: a version read later than its stamp only makes entries stale sooner.
  const Clock::time_point now = Clock::now();
  version_.store(store_.ChangeVersion(), std::memory_order_relaxed);
  version_read_at_.store(now.time_since_epoch().count(), std::memory_order_release);
}

std::uint64_t IncidentCache::RecentVersion() {
  const Clock::time_point read_at{Clock::duration(version_read_at_.load(std::memory_order_acquire))};
  if (Clock::now() - read_at > kMaxVersionAge) RefreshVersion();
  return version_.load(std::memory_order_relaxed);
}

std::optional<IncidentStatus> IncidentCache::Status(std::string_view id) {
  // Read before the status: a commit while that runs must make the entry stale, not slip in.
  const std::uint64_t version = RecentVersion();
  {
    const std::lock_guard lock(mutex_);
    auto found = entries_.find(id);
    if (found != entries_.end() && (IsEnded(found->second.status) || found->second.version == version)) {
      return found->second.status;
    }
  }
  // Read without the lock: other incidents' deliveries need not wait for the store.
  std::optional<Incident> incident = store_.FindIncident(id);
  if (!incident) return std::nullopt;
  Remember(id, incident->status, version);
  return incident->status;
}

bool IncidentCache::Transition(std::string_view id, IncidentStatus to, std::string_view comment) {
  // The transition's own commit moves the version: an ACTIVE entry is read again once, while an
  // ended one holds for good.
  const std::uint64_t version = store_.ChangeVersion();
  if (store_.TransitionIncident(id, to, comment)) {
    Remember(id, to, version);
    return true;
  }
  // Unknown, or ended elsewhere: the next look reads the store.
  const std::lock_guard lock(mutex_);
  if (auto found = entries_.find(id); found != entries_.end()) entries_.erase(found);
  return false;
}

void IncidentCache::Remember(std::string_view id, IncidentStatus status, std::uint64_t version) {
  const std::lock_guard lock(mutex_);
  auto found = entries_.find(id);
  if (found == entries_.end()) {
    if (entries_.size() >= kMaxEntries) entries_.clear();
    entries_.emplace(std::string(id), Entry{status, version});
    return;
  }
  // An ended status stays: a read that started before it was written must not undo it.
  if (IsEnded(found->second.status)) return;
  found->second = Entry{status, version};
}

}  // namespace workflowd
