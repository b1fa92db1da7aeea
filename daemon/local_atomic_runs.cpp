#include "local_atomic_runs.hpp"

#include <algorithm>

namespace workflowd {

LocalAtomicRuns::Hold::Hold(LocalAtomicRuns& runs, std::string key) : runs_(runs), key_(std::move(key)) {
  std::unique_lock lock(runs_.mutex_);
  auto [entry, was_free] = runs_.keys_.try_emplace(key_);
  if (was_free) {
    entry->second.held_since = Clock::now();
    held_ = true;
    return;
  }
  Waiter waiter;
  Key& held = entry->second;  // stays put while the key is held: rehashing moves no element
  held.waiters.push_back(&waiter);
  for (;;) {
    // The bound runs from the current holder's start: a hand-over to a waiter ahead of this one
    // starts it again.
    const Clock::time_point deadline = held.held_since + runs_.max_wait_;
    if (waiter.holds) {
      held_ = true;
      return;
    }
    if (Clock::now() >= deadline) break;
    waiter.handed_over.wait_until(lock, deadline);
  }
  held.waiters.erase(std::find(held.waiters.begin(), held.waiters.end(), &waiter));
}

LocalAtomicRuns::Hold::~Hold() {
  if (!held_) return;
  const std::lock_guard lock(runs_.mutex_);
  const auto entry = runs_.keys_.find(key_);
  Key& held = entry->second;
  if (held.waiters.empty()) {
    runs_.keys_.erase(entry);
    return;
  }
  Waiter* next = held.waiters.front();
  held.waiters.pop_front();
  held.held_since = Clock::now();
  next->holds = true;
  // Under the lock: once it is released, the waiter may return and its condition variable go.
  next->handed_over.notify_one();
}

}  // namespace workflowd
