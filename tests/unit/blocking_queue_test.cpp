#include "blocking_queue.hpp"

#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using workflowd::BlockingQueue;

TEST_CASE("PushAll moves a batch in, in order, and leaves the batch empty", "[blocking-queue]") {
  BlockingQueue<int> queue;
  std::vector<int> batch{1, 2, 3};
  queue.PushAll(batch);
  CHECK(batch.empty());
  std::vector<int> empty;
  queue.PushAll(empty);
  queue.Push(4);
  for (int expected = 1; expected <= 4; ++expected) CHECK(queue.Pop() == expected);
  queue.Close();
  CHECK_FALSE(queue.Pop().has_value());
}

TEST_CASE("a batch wakes enough waiting consumers to take all of it", "[blocking-queue]") {
  BlockingQueue<int> queue;
  constexpr int kConsumers = 4;
  constexpr int kBatches = 1000;
  std::mutex mutex;
  std::multiset<int> taken;
  std::vector<std::thread> consumers;
  for (int i = 0; i < kConsumers; ++i) {
    consumers.emplace_back([&] {
      while (std::optional<int> item = queue.Pop()) {
        const std::lock_guard lock(mutex);
        taken.insert(*item);
      }
    });
  }
  std::vector<int> batch;
  for (int b = 0; b < kBatches; ++b) {
    for (int i = 0; i < b % 7; ++i) batch.push_back(b * 10 + i);
    queue.PushAll(batch);
  }
  // Close only after everything was taken: a consumer that was never woken would hang here.
  for (;;) {
    {
      const std::lock_guard lock(mutex);
      if (taken.size() == 2997) break;  // sum over b of b % 7, for b < 1000
    }
    std::this_thread::yield();
  }
  queue.Close();
  for (std::thread& consumer : consumers) consumer.join();
  CHECK(taken.size() == 2997);
  CHECK(std::set<int>(taken.begin(), taken.end()).size() == taken.size());  // none twice
}
