#include "ack_window.hpp"

#include <catch2/catch.hpp>
#include <vector>

using workflowd::AckWindow;
using namespace std::chrono_literals;

namespace {

using Acks = std::vector<std::pair<std::uint64_t, bool>>;  // tag, multiple

Acks Take(AckWindow& window, AckWindow::Clock::time_point now, bool flush = false) {
  std::vector<AckWindow::Ack> acks;
  window.Take(now, flush, acks);
  Acks result;
  for (const AckWindow::Ack& ack : acks) result.emplace_back(ack.tag, ack.multiple);
  return result;
}

}  // namespace

TEST_CASE("settled deliveries at the front of the window go in one multiple ack", "[ack-window]") {
  AckWindow window;
  const auto t0 = AckWindow::Clock::now();
  for (std::uint64_t tag = 1; tag <= 5; ++tag) window.Deliver(tag, t0);
  CHECK(Take(window, t0).empty());

  window.AckLater(2);
  window.AckLater(1);
  window.AckLater(3);
  CHECK(Take(window, t0) == Acks{{3, true}});
  CHECK(Take(window, t0).empty());  // nothing is acknowledged twice

  SECTION("a delivery put back inside the run is left out of it, not acknowledged") {
    window.Closed(4);
    window.AckLater(5);
    CHECK(Take(window, t0) == Acks{{5, true}});
  }
  SECTION("a run that ends in a put-back delivery is acknowledged up to its last due one") {
    window.AckLater(4);
    window.Closed(5);
    CHECK(Take(window, t0) == Acks{{4, true}});
  }
  SECTION("a run of put-back deliveries sends nothing") {
    window.Closed(4);
    window.Closed(5);
    CHECK(Take(window, t0).empty());
  }
}

TEST_CASE("a delivery still running holds the acks behind it back only briefly", "[ack-window]") {
  AckWindow window;
  const auto t0 = AckWindow::Clock::now();
  for (std::uint64_t tag = 10; tag <= 14; ++tag) window.Deliver(tag, t0);
  window.AckLater(10);
  window.AckLater(12);
  window.AckLater(14);
  // 11 runs on: 10 goes at once; 12 and 14 wait for 11 a moment, then go one by one.
  CHECK(Take(window, t0) == Acks{{10, true}});
  CHECK(Take(window, t0 + AckWindow::kMaxHoldBack / 2).empty());
  CHECK(Take(window, t0 + AckWindow::kMaxHoldBack) == Acks{{12, false}, {14, false}});
  CHECK(Take(window, t0 + 1s).empty());

  // When 11 finishes, only it is acknowledged: a multiple ack up to 11 touches nothing else.
  window.AckLater(11);
  CHECK(Take(window, t0 + 1s) == Acks{{11, true}});
  window.AckLater(13);
  CHECK(Take(window, t0 + 1s) == Acks{{13, true}});
  CHECK(Take(window, t0 + 2s).empty());
}

TEST_CASE("flushing the window acknowledges every settled delivery at once", "[ack-window]") {
  AckWindow window;
  const auto t0 = AckWindow::Clock::now();
  for (std::uint64_t tag = 1; tag <= 3; ++tag) window.Deliver(tag, t0);
  window.AckLater(3);
  CHECK(Take(window, t0).empty());
  CHECK(Take(window, t0, /*flush=*/true) == Acks{{3, false}});
}

TEST_CASE("a new channel's window starts again from its first tag", "[ack-window]") {
  AckWindow window;
  const auto t0 = AckWindow::Clock::now();
  window.Deliver(1, t0);
  window.Deliver(2, t0);
  window.Reset();
  window.Deliver(1, t0);
  window.AckLater(1);
  CHECK(Take(window, t0) == Acks{{1, true}});
  // A tag that never arrived (3) does not hold the window.
  window.Deliver(2, t0);
  window.Deliver(4, t0);
  window.AckLater(4);
  window.AckLater(2);
  CHECK(Take(window, t0) == Acks{{4, true}});
  // Marks for tags outside the window are ignored.
  window.AckLater(99);
  window.Closed(0);
  CHECK(Take(window, t0, true).empty());
}

TEST_CASE("the window says when held-back acks fall due", "[ack-window]") {
  AckWindow window;
  const auto t0 = AckWindow::Clock::now();
  for (std::uint64_t tag = 1; tag <= 3; ++tag) window.Deliver(tag, t0);
  CHECK_FALSE(window.HeldUntil().has_value());  // nothing settled, nothing to send later

  window.AckLater(2);
  CHECK(Take(window, t0).empty());
  REQUIRE(window.HeldUntil().has_value());
  CHECK(*window.HeldUntil() == t0 + AckWindow::kMaxHoldBack);

  CHECK(Take(window, t0 + AckWindow::kMaxHoldBack) == Acks{{2, false}});
  CHECK_FALSE(window.HeldUntil().has_value());

  SECTION("a delivery settled twice is acknowledged once") {
    window.AckLater(2);
    window.AckLater(1);
    window.AckLater(3);
    CHECK(Take(window, t0 + 1s) == Acks{{3, true}});
    CHECK_FALSE(window.HeldUntil().has_value());
  }
}
