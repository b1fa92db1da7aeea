#include "message_log.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

namespace workflowd {

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

MessageLog::MessageLog(StateStore& store, MessageLogLevel level)
    : store_(store), level_(level), writer_([this] { Write(); }) {}

MessageLog::~MessageLog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
}

void MessageLog::Record(MessageEvent&& event) {
  if (!Keeps(event.status)) return;
  bool wake;
  {
    std::unique_lock lock(mutex_);
    written_.wait(lock, [&] { return queued_.size() < kMaxQueued; });
    queued_.push_back(std::move(event));
    ++recorded_;
    // The writer waits for a first event, and while it gathers for a half-full queue; it needs
    // no wake-up for the events in between.
    wake = queued_.size() == 1 || queued_.size() == kMaxQueued / 2;
  }
  if (wake) wake_.notify_one();
}

void MessageLog::Flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = recorded_;
  ++flush_waiters_;
  wake_.notify_one();
  written_.wait(lock, [&] { return stored_ >= target; });
  --flush_waiters_;
}

void MessageLog::Write() {
  using Clock = std::chrono::steady_clock;
  std::vector<MessageEvent> batch;
  Clock::time_point last_commit{};
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, and everything is written
    // Group commit: after a quiet spell the first event goes at once; under load, what gathers
    // over the interval goes in one transaction, unless someone waits for it.
    wake_.wait_until(lock, last_commit + kCommitInterval, [&] {
      return stopping_ || flush_waiters_ > 0 || queued_.size() >= kMaxQueued / 2;
    });
    batch.swap(queued_);
    last_commit = Clock::now();
    lock.unlock();
    try {
      store_.RecordMessages(batch);
    } catch (const StateStoreError& error) {
      spdlog::error("message log: {} events not written: {}", batch.size(), error.what());
    }
    const std::size_t written = batch.size();
    batch.clear();
    lock.lock();
    stored_ += written;
    written_.notify_all();
  }
}

}  // namespace workflowd
