#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace workflowd {

// Serialises the runs of atomic handlers within this process. A run whose (handler, incident)
// another run here holds waits for it, briefly, instead of going at once through the delay
// queue, which puts a message off by 50 ms or more (and longer each time) for a join that takes
// a millisecond: a burst of joins for one incident would otherwise trickle through for seconds.
// Across processes the store's lease still decides; this only spares it the runs it would refuse.
//
// Waiting costs a worker, so a run waits only while the current holder has held the key for less
// than max_wait: a long run is waited for only at its start, and later runs go to the delay queue
// at once, as without this. Waiters take the key in the order they came: a release hands it to
// the first of them, so neither a later run nor the releasing thread's next run overtakes them,
// and a waiter waits at most max_wait for each run ahead of it (fewer than the workers).
// A burst of short runs for one incident may hold every worker, as the incidents behind them in
// the worker queue would anyway. (Capping the waiters at half the workers let the free ones put
// the burst's runs off instead: a quicksort of 1,000 numbers took 12 s, against 0.25 s.)
// While such a burst lasts, this daemon's runs hand the incident to each other: another daemon's
// run for it finds the lease taken and waits in the delay queue until a gap.
// Thread-safe.
class LocalAtomicRuns {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LocalAtomicRuns(std::chrono::milliseconds max_wait) : max_wait_(max_wait) {}

  // Holds key for its life, if it could take it within the bounds above.
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
    bool held_ = false;
  };

 private:
  // A run waiting for a key; it lives on the waiting thread's stack.
  struct Waiter {
    std::condition_variable handed_over;
    bool holds = false;
  };
  struct Key {
    Clock::time_point held_since;  // when its current holder took it
    std::deque<Waiter*> waiters;   // in the order they came
  };

  const std::chrono::milliseconds max_wait_;
  std::mutex mutex_;
  std::unordered_map<std::string, Key> keys_;  // the held ones
};

}  // namespace workflowd
