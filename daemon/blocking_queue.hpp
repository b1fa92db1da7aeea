#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

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

  // Moves every item in and leaves items empty: one lock, and a wake-up only for as many waiting
  // consumers as there are items.
  void PushAll(std::vector<T>& items) {
    if (items.empty()) return;
    std::size_t wake;
    {
      std::lock_guard lock(mutex_);
      for (T& item : items) items_.push_back(std::move(item));
      wake = std::min(items.size(), waiting_);
    }
    items.clear();
    for (std::size_t i = 0; i < wake; ++i) ready_.notify_one();
  }

  // The next item, or nullopt once the queue is closed.
  std::optional<T> Pop() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    --waiting_;
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
  std::size_t waiting_ = 0;  // consumers in Pop
  bool closed_ = false;
};

}  // namespace workflowd
