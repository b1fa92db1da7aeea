#include "local_atomic_runs.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>

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
  LocalAtomicRuns::Hold first(runs, "merge/incident-1");
  REQUIRE(first.held());

  const auto start = Clock::now();
  {
    LocalAtomicRuns::Hold second(runs, "merge/incident-1");
    CHECK_FALSE(second.held());
  }
  CHECK(Clock::now() - start >= milliseconds(100) - milliseconds(1));

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
