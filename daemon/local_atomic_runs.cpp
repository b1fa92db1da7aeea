#include "local_atomic_runs.hpp"

namespace workflowd {

LocalAtomicRuns::Hold::Hold(LocalAtomicRuns& runs, std::string key) : runs_(runs), key_(std::move(key)) {
  std::unique_lock lock(runs_.mutex_);
  held_ = runs_.released_.wait_for(lock, kMaxWait, [&] { return !runs_.held_.contains(key_); });
  if (held_) runs_.held_.insert(key_);
}

LocalAtomicRuns::Hold::~Hold() {
  if (!held_) return;
  {
    std::lock_guard lock(runs_.mutex_);
    runs_.held_.erase(key_);
  }
  // Waiters for other keys wake too and wait again: there are at most as many as workers.
  runs_.released_.notify_all();
}

}  // namespace workflowd
