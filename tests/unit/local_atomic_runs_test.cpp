#include "local_atomic_runs.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using workflowd::LocalAtomicRuns;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The bounds are far apart from the waits the tests make, so that a slow machine (a sanitizer
// build on 2 busy cores) cannot turn a wait into a give-up or the other way round.

TEST_CASE("a run waits for another run of its key in this process, then takes the key", "[atomic]") {
  LocalAtomicRuns runs(std::chrono::seconds(30));
  std::optional<LocalAtomicRuns::Hold> first(std::in_place, runs, "merge/incident-1");
  REQUIRE(first->held());

  const auto start = Clock::now();
  std::thread releaser([&] {
    std::this_thread::sleep_for(milliseconds(20));
    first.reset();
  });
  LocalAtomicRuns::Hold second(runs, "merge/incident-1");
  const auto waited = Clock::now() - start;
  releaser.join();
  CHECK(second.held());
  // Woken by the release, not by the bound.
  CHECK(waited >= milliseconds(20));
  CHECK(waited < std::chrono::seconds(15));
}

TEST_CASE("a run gives up once the holder has held the key for max_wait, and other keys never wait", "[atomic]") {
  LocalAtomicRuns runs(milliseconds(100));
  // Before the key is taken: the bound runs from then.
  const auto start = Clock::now();
  LocalAtomicRuns::Hold first(runs, "merge/incident-1");
  REQUIRE(first.held());
  {
    LocalAtomicRuns::Hold second(runs, "merge/incident-1");
    CHECK_FALSE(second.held());
  }
  CHECK(Clock::now() - start >= milliseconds(100));

  // The holder has held it past the bound: a later run does not wait at all, and a run that
  // gave up released nothing.
  const auto again_start = Clock::now();
  LocalAtomicRuns::Hold again(runs, "merge/incident-1");
  CHECK_FALSE(again.held());
  CHECK(Clock::now() - again_start < milliseconds(100));

  LocalAtomicRuns::Hold other_incident(runs, "merge/incident-2");
  LocalAtomicRuns::Hold other_handler(runs, "split/incident-1");
  CHECK(other_incident.held());
  CHECK(other_handler.held());
}

namespace {

// Runs that take a key, note who took it, hold it for a moment and let it go.
class TakeOrder {
 public:
  explicit TakeOrder(LocalAtomicRuns& runs) : runs_(runs) {}

  // Starts a run of key on its own thread; returns once it had time to queue up.
  void Start(std::string name, const std::string& key) {
    threads_.emplace_back([this, name = std::move(name), key] {
      LocalAtomicRuns::Hold hold(runs_, key);
      if (hold.held()) Note(name);
      std::this_thread::sleep_for(milliseconds(10));
    });
    std::this_thread::sleep_for(milliseconds(200));
  }

  void Note(const std::string& name) {
    const std::lock_guard lock(mutex_);
    order_.push_back(name);
  }

  std::vector<std::string> Finish() {
    threads_.clear();  // joins
    return order_;
  }

 private:
  LocalAtomicRuns& runs_;
  std::mutex mutex_;
  std::vector<std::string> order_;
  std::vector<std::jthread> threads_;
};

}  // namespace

TEST_CASE("waiters take the key in the order they came, and the releasing thread's next run queues behind them",
          "[atomic]") {
  LocalAtomicRuns runs(std::chrono::seconds(30));
  TakeOrder order(runs);
  std::optional<LocalAtomicRuns::Hold> holder(std::in_place, runs, "join/incident-1");
  REQUIRE(holder->held());
  order.Start("first waiter", "join/incident-1");
  order.Start("second waiter", "join/incident-1");
  order.Start("third waiter", "join/incident-1");

  holder.reset();
  {
    // Straight after its release, before any waiter could run: without the hand-over it would
    // find the key free.
    LocalAtomicRuns::Hold next_run(runs, "join/incident-1");
    CHECK(next_run.held());
    order.Note("releasing thread's next run");
  }
  CHECK(order.Finish() ==
        std::vector<std::string>{"first waiter", "second waiter", "third waiter", "releasing thread's next run"});
}

TEST_CASE("a waiter that gives up leaves the line: the key is never handed to it", "[atomic]") {
  LocalAtomicRuns runs(milliseconds(300));
  TakeOrder order(runs);
  std::optional<LocalAtomicRuns::Hold> holder(std::in_place, runs, "join/incident-1");
  REQUIRE(holder->held());
  order.Start("gives up", "join/incident-1");   // waits 300 ms from the holder's start, then leaves
  std::this_thread::sleep_for(milliseconds(200));  // past the bound
  order.Start("too late", "join/incident-1");   // the holder is past the bound: does not wait
  holder.reset();
  LocalAtomicRuns::Hold after(runs, "join/incident-1");
  CHECK(after.held());
  CHECK(order.Finish().empty());
}
