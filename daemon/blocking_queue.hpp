#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace workflowd {

// A multi-producer, multi-consumer FIFO whose Pop blocks until an item arrives or the queue is
// closed. Unbounded: the broker's prefetch bounds what the I/O thread can push.
template <class T>
class BlockingQueue {
 public:
  void Push(T item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
  }

  // The next item, or nullopt once the queue is closed.
  std::optional<T> Pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  // Wakes every waiting Pop and drops what is still queued.
  void Close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      items_.clear();
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace workflowd
