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

// A HandlerRunner over a fresh store, with one atomic handler whose first run lasts until the
// test lets it end. A run waits in the daemon for another run of its incident for up to 30 s,
// far longer than any test waits: a slow machine cannot turn a wait into a put-off.
class AtomicStage {
 public:
  AtomicStage() {
    settings_.max_deliveries = 2;
    registration_.queue = "join";
    registration_.options.atomic = true;
    registration_.handler = {"join_handler", [this](workflow::Message&) {
                               if (runs_.fetch_add(1) == 0) first_run_may_end_.get_future().wait();
                             }};
  }

  // A delivery of the message message_id; redelivered when an earlier delivery of it did not
  // finish (then the crash-loop guard counts it).
  Job JobFor(std::uint64_t tag, std::uint32_t generation, const std::string& message_id, bool redelivered = false) {
    InboundDelivery delivery{.tag = tag,
                             .redelivered = redelivered,
                             .body = R"({"IncidentID":")" + incident_ + R"("})",
                             .message_id = message_id};
    return Job{std::move(delivery), generation, &registration_};
  }
  // What the crash-loop guard decides for one more redelivery of message_id.
  CrashLoopGuard::Admission RedeliveredAgain(const std::string& message_id) {
    return guard_.Admit(registration_.queue, true, message_id, "{}");
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
  HandlerRunner runner_{*store_, incidents_, log_, settings_.state, guard_, "test:1", std::chrono::seconds(30)};
  Registration registration_;
  std::atomic<int> runs_{0};
  std::promise<void> first_run_may_end_;
};

}  // namespace

TEST_CASE("a run that waited for an atomic run of its incident then runs its handler", "[atomic]") {
  AtomicStage stage;
  const std::atomic<std::uint32_t> generation{1};
  auto first = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(1, 1, "m1"), generation); });
  stage.AwaitFirstRun();
  auto second = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(2, 1, "m2"), generation); });
  // It waits in the daemon: it neither runs nor is put off while the first run lasts. (CHECK:
  // a failed REQUIRE would leave the first run blocked and the test hanging on it.)
  CHECK(second.wait_for(milliseconds(200)) == std::future_status::timeout);
  stage.EndFirstRun();
  CHECK(first.get().verdict == Verdict::kDone);
  CHECK(second.get().verdict == Verdict::kDone);
  CHECK(stage.runs() == 2);
}

TEST_CASE("a run whose connection was lost while it waited for an atomic run is dropped unrun", "[atomic]") {
  AtomicStage stage;
  std::atomic<std::uint32_t> generation{1};
  auto first = std::async(std::launch::async, [&] { return stage.runner().Handle(stage.JobFor(1, 1, "m1"), generation); });
  stage.AwaitFirstRun();
  auto second = std::async(std::launch::async, [&] {
    return stage.runner().Handle(stage.JobFor(2, 1, "m2", /*redelivered=*/true), generation);
  });
  CHECK(second.wait_for(milliseconds(200)) == std::future_status::timeout);
  generation = 2;  // the I/O thread reconnected: the broker delivers the second job's message again
  stage.EndFirstRun();
  first.get();
  const Settlement dropped = second.get();
  // Not put off through the delay queue (kDelay): that would publish a copy of a message the
  // broker redelivers anyway.
  CHECK(dropped.verdict == Verdict::kDone);
  CHECK(dropped.outgoing.empty());
  CHECK(stage.runs() == 1);
  // It did not finish, so its crash-loop count goes on: the next redelivery is its second
  // (max_deliveries 2).
  CHECK_THAT(stage.RedeliveredAgain("m2").refusal, Catch::StartsWith("delivered 2 times"));
}
