#include "run_handler.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "crash_loop_guard.hpp"
#include "handler_registry.hpp"
#include "incident_cache.hpp"
#include "message_log.hpp"
#include "sqlite_state_store.hpp"
#include "support/temp_dir.hpp"

using namespace workflowd;
using std::chrono::milliseconds;

namespace {

// A HandlerRunner over a fresh store, with one atomic handler that runs until the test lets it
// finish.
class AtomicStage {
 public:
  AtomicStage() {
    registration_.queue = "join";
    registration_.options.atomic = true;
    registration_.handler = {"join_handler", [this](workflow::Message&) {
                               if (runs_.fetch_add(1) == 0) first_run_may_end_.get_future().wait();
                             }};
  }

  Job JobFor(std::uint64_t tag, std::uint32_t generation) {
    InboundDelivery delivery{.tag = tag, .body = R"({"IncidentID":")" + incident_ + R"("})"};
    return Job{std::move(delivery), generation, &registration_};
  }

  HandlerRunner& runner() { return runner_; }
  int runs() const { return runs_.load(); }
  // The first run is in its handler, holding the incident's atomic key.
  void AwaitFirstRun() const {
    while (runs_.load() == 0) std::this_thread::sleep_for(milliseconds(1));
  }
  void EndFirstRun() { first_run_may_end_.set_value(); }

 private:
  testing::TempDir dir_{"workflowd-run-handler-test"};
  std::unique_ptr<StateStore> store_ = OpenSqliteStateStore(dir_.path() / "state.db");
  std::string incident_ = store_->CreateIncident("join", "test").id;
  IncidentCache incidents_{*store_};
  MessageLog log_{*store_, MessageLogLevel::kOff};
  Settings settings_;
  CrashLoopGuard guard_{*store_, settings_};
  HandlerRunner runner_{*store_, incidents_, log_, settings_.state, guard_, "test:1"};
  Registration registration_;
  std::atomic<int> runs_{0};
  std::promise<void> first_run_may_end_;
};

}  // namespace

// A run waits in the daemon for another of its (handler, incident) only while that one is in its
// first 50 ms: each test ends the first run well before, after 10 ms.
TEST_CASE("a run that waited for an atomic run of its incident then runs its handler", "[atomic]") {
  AtomicStage stage;
  const std::atomic<std::uint32_t> generation{1};
  auto first = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(1, 1), generation); });
  stage.AwaitFirstRun();
  auto second = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(2, 1), generation); });
  std::this_thread::sleep_for(milliseconds(10));
  stage.EndFirstRun();
  CHECK(first.get().verdict == Verdict::kDone);
  CHECK(second.get().verdict == Verdict::kDone);
  CHECK(stage.runs() == 2);
}

TEST_CASE("a run whose connection was lost while it waited for an atomic run is dropped unrun", "[atomic]") {
  AtomicStage stage;
  std::atomic<std::uint32_t> generation{1};
  auto first = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(1, 1), generation); });
  stage.AwaitFirstRun();
  auto second = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(2, 1), generation); });
  std::this_thread::sleep_for(milliseconds(10));
  generation = 2;  // the I/O thread reconnected: the broker delivers the second job's message again
  stage.EndFirstRun();
  first.get();
  const Settlement dropped = second.get();
  // Not put off through the delay queue (kDelay): that would publish a copy of a message the
  // broker redelivers anyway.
  CHECK(dropped.verdict == Verdict::kDone);
  CHECK(dropped.outgoing.empty());
  CHECK(stage.runs() == 1);
}
