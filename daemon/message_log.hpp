#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "settings.hpp"
#include "state_store.hpp"

namespace workflowd {

// Writes message events to the state store from a thread of its own, in group commits, so a
// handler does not wait for the disk. Under load a commit takes what gathered over
// kCommitInterval: one transaction instead of many, and a message's SENT, PROCESSING and COMPLETE
// mostly land in one batch, which the store writes as one row. At level `errors` only ERROR and
// NOT_PROCESSED events are kept; at `off` none. When the store falls behind by kMaxQueued
// events, Record waits for it: memory stays bounded and the daemon slows to what the store can
// take. Thread-safe.
class MessageLog {
 public:
  MessageLog(StateStore& store, MessageLogLevel level);
  // Writes what is still queued, then stops.
  ~MessageLog();
  MessageLog(const MessageLog&) = delete;
  MessageLog& operator=(const MessageLog&) = delete;

  // Whether events of this status are kept: callers skip building the ones that are not.
  bool Keeps(MessageStatus status) const {
    return level_ == MessageLogLevel::kAll ||
           (level_ == MessageLogLevel::kErrors &&
            (status == MessageStatus::kError || status == MessageStatus::kNotProcessed));
  }
  // Whether every step is kept, so that "in flight" can be read from the log.
  bool complete() const { return level_ == MessageLogLevel::kAll; }

  static constexpr std::size_t kMaxQueued = 50000;
  // How long events may gather before a commit; a crash loses at most this much of the log.
  static constexpr std::chrono::milliseconds kCommitInterval{100};

  void Record(MessageEvent&& event);
  // Returns once everything recorded before the call is in the store (for tests and tools).
  void Flush();

 private:
  void Write();

  StateStore& store_;
  const MessageLogLevel level_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;  // also wakes Record calls waiting for room
  std::vector<MessageEvent> queued_;
  std::uint64_t recorded_ = 0;  // events recorded so far
  std::uint64_t stored_ = 0;    // of those, written (or given up on)
  int flush_waiters_ = 0;       // Flush calls waiting: commit now
  bool stopping_ = false;
  std::jthread writer_;
};

// How much of a body the log keeps.
inline constexpr std::size_t kBodyPrefixBytes = 256;

// Milliseconds since the Unix epoch: the store's clock.
std::int64_t NowMs();

}  // namespace workflowd
