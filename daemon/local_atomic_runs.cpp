#include "local_atomic_runs.hpp"

namespace workflowd {

LocalAtomicRuns::Hold::Hold(LocalAtomicRuns& runs, std::string key) : runs_(runs), key_(std::move(key)) {
  std::unique_lock lock(runs_.mutex_);
  for (;;) {
    const auto holder = runs_.held_since_.find(key_);
    if (holder == runs_.held_since_.end()) {
      runs_.held_since_.emplace(key_, Clock::now());
      held_ = true;
      return;
    }
    // Measured from the current holder's start: a release wakes every waiter, and a waiter that
    // lost the key to another one waits for the new holder on the new holder's clock.
    const Clock::time_point deadline = holder->second + runs_.max_wait_;
    if (Clock::now() >= deadline) return;
    runs_.released_.wait_until(lock, deadline);
  }
}

LocalAtomicRuns::Hold::~Hold() {
  if (!held_) return;
  {
    std::lock_guard lock(runs_.mutex_);
    runs_.held_since_.erase(key_);
  }
  // Waiters for other keys wake too and wait again: there are fewer of them than workers.
  runs_.released_.notify_all();
}

}  // namespace workflowd
