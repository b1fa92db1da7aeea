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
  {
    std::unique_lock lock(mutex_);
    written_.wait(lock, [&] { return queued_.size() < kMaxQueued; });
    queued_.push_back(std::move(event));
    ++recorded_;
  }
  wake_.notify_one();
}

void MessageLog::Flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = recorded_;
  written_.wait(lock, [&] { return stored_ >= target; });
}

void MessageLog::Write() {
  std::vector<MessageEvent> batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, and everything is written
    batch.swap(queued_);
    lock.unlock();
    // Everything that queued up while the last batch was written goes in one transaction.
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
