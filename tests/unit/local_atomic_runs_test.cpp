#include "local_atomic_runs.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>

using workflowd::LocalAtomicRuns;
using Clock = std::chrono::steady_clock;

TEST_CASE("a run waits for another run of its key in this process, then takes the key", "[atomic]") {
  LocalAtomicRuns runs;
  std::optional<LocalAtomicRuns::Hold> first(std::in_place, runs, "merge/incident-1");
  REQUIRE(first->held());

  const auto start = Clock::now();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    first.reset();
  });
  LocalAtomicRuns::Hold second(runs, "merge/incident-1");
  const auto waited = Clock::now() - start;
  releaser.join();
  CHECK(second.held());
  CHECK(waited >= std::chrono::milliseconds(10));
}

TEST_CASE("a run whose key stays taken gives up after the bound, and other keys never wait", "[atomic]") {
  LocalAtomicRuns runs;
  LocalAtomicRuns::Hold first(runs, "merge/incident-1");
  REQUIRE(first.held());

  const auto start = Clock::now();
  {
    LocalAtomicRuns::Hold second(runs, "merge/incident-1");
    CHECK_FALSE(second.held());
  }
  CHECK(Clock::now() - start >= LocalAtomicRuns::kMaxWait);

  // A run that gave up released nothing: the key is still the first run's.
  LocalAtomicRuns::Hold again(runs, "merge/incident-1");
  CHECK_FALSE(again.held());

  const auto other_start = Clock::now();
  LocalAtomicRuns::Hold other_incident(runs, "merge/incident-2");
  LocalAtomicRuns::Hold other_handler(runs, "split/incident-1");
  CHECK(other_incident.held());
  CHECK(other_handler.held());
  CHECK(Clock::now() - other_start < LocalAtomicRuns::kMaxWait);
}
