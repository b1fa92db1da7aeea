#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <unordered_set>

namespace workflowd {

// Serialises the runs of atomic handlers within this process. A run whose (handler, incident)
// another run here holds waits for it, briefly, instead of going at once through the delay
// queue, which puts a message off by 50 ms or more (and longer each time) for a join that takes
// a millisecond: a burst of joins for one incident would otherwise trickle through for seconds.
// Across processes the store's lease still decides; this only spares it the runs it would refuse.
// Thread-safe.
class LocalAtomicRuns {
 public:
  // The longest a worker waits here: no longer than the delay queue's first wait would be.
  static constexpr std::chrono::milliseconds kMaxWait{50};

  // Holds key for its life, if it could take it within kMaxWait.
  class Hold {
   public:
    Hold(LocalAtomicRuns& runs, std::string key);
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

    bool held() const { return held_; }

   private:
    LocalAtomicRuns& runs_;
    std::string key_;
    bool held_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  std::unordered_set<std::string> held_;
};

}  // namespace workflowd
