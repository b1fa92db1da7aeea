#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace workflowd {

// Which deliveries of a channel to acknowledge, and how, so that a busy daemon sends one
// basic.ack with `multiple` for a run of settled deliveries instead of one per delivery.
//
// Delivery tags on a channel are consecutive from 1: every delivery enters the window when it
// arrives, and leaves it from the front once settled. A settled run at the front is acknowledged
// with one multiple ack (what was put back or rejected in it is no longer outstanding, so the
// ack does not touch it). A delivery still running at the front holds back the acks of those
// behind it only for kMaxHoldBack: then they are acknowledged one by one, so that a slow handler
// does not keep the broker's prefetch window full of finished deliveries.
class AckWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kMaxHoldBack{10};

  struct Ack {
    std::uint64_t tag;
    bool multiple;
  };

  // A new delivery, with the next tag of the channel.
  void Deliver(std::uint64_t tag, Clock::time_point now) {
    if (states_.empty()) {
      first_tag_ = tag;
      front_since_ = now;
    }
    if (tag < first_tag_ + states_.size()) return;  // not new: nothing to track
    // A tag that never reached us (none should) must not hold the window.
    states_.resize(tag - first_tag_, State::kClosed);
    states_.push_back(State::kRunning);
  }
  // The delivery is to be acknowledged at the next Take.
  void AckLater(std::uint64_t tag) {
    if (Set(tag, State::kAckDue)) ++due_;
  }
  // The delivery was put back or rejected: nothing more to send for it.
  void Closed(std::uint64_t tag) { Set(tag, State::kClosed); }

  // Appends the acks to send now to acks. With flush, acknowledges everything settled at once.
  void Take(Clock::time_point now, bool flush, std::vector<Ack>& acks) {
    std::uint64_t last_due = 0;
    std::size_t settled = 0;
    while (settled < states_.size() && states_[settled] != State::kRunning) {
      if (states_[settled] == State::kAckDue) {
        last_due = first_tag_ + settled;
        --due_;
      }
      ++settled;
    }
    if (settled > 0) {
      states_.erase(states_.begin(), states_.begin() + static_cast<std::ptrdiff_t>(settled));
      first_tag_ += settled;
      front_since_ = now;
    }
    if (last_due != 0) acks.push_back(Ack{last_due, true});
    if (states_.empty() || (!flush && now - front_since_ < kMaxHoldBack)) return;
    for (std::size_t i = 1; i < states_.size(); ++i) {
      if (states_[i] != State::kAckDue) continue;
      acks.push_back(Ack{first_tag_ + i, false});
      states_[i] = State::kClosed;
      --due_;
    }
  }

  // When acks held back by a running delivery fall due (for the I/O loop's wait), if any are.
  std::optional<Clock::time_point> HeldUntil() const {
    if (due_ == 0) return std::nullopt;
    return front_since_ + kMaxHoldBack;
  }

  // Forgets everything, for a new channel.
  void Reset() {
    states_.clear();
    due_ = 0;
  }

 private:
  enum class State : std::uint8_t { kRunning, kAckDue, kClosed };

  // Whether tag was running (and is now state).
  bool Set(std::uint64_t tag, State state) {
    if (tag < first_tag_ || tag - first_tag_ >= states_.size()) return false;
    State& current = states_[tag - first_tag_];
    if (current != State::kRunning) return false;
    current = state;
    return true;
  }

  std::deque<State> states_;
  std::size_t due_ = 0;  // kAckDue entries
  std::uint64_t first_tag_ = 1;
  Clock::time_point front_since_{};  // since when the front delivery holds the others back
};

}  // namespace workflowd
