#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace workflowd {

// The daemon's counters, written on the per-message path and read by the metrics endpoint on
// a thread of its own. Writing one costs a relaxed atomic add: no lock, no allocation, no
// lookup. A reader sees each value as of some moment of its own; the values of one scrape are
// not a snapshot of one instant, which Prometheus does not need.

// Only ever grows (a Prometheus counter).
class Counter {
 public:
  void Add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (a Prometheus gauge).
class Gauge {
 public:
  void Set(std::int64_t value) { value_.store(value, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Durations in fixed buckets, from half a millisecond to five minutes. Observing one is two
// relaxed adds (its bucket and the sum); the buckets hold counts of their own range, made
// cumulative only when read.
class LatencyHistogram {
 public:
  // The upper bounds, in microseconds; a last bucket (+Inf) takes the rest.
  static constexpr std::array<std::uint64_t, 17> kBoundsUs = {
      500,    1000,   2500,    5000,    10000,   25000,    50000,    100000,   250000,
      500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 300000000};
  static constexpr std::size_t kBuckets = kBoundsUs.size() + 1;

  void Observe(std::chrono::steady_clock::duration duration) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
    const std::uint64_t value = us > 0 ? static_cast<std::uint64_t>(us) : 0;
    std::size_t bucket = 0;
    while (bucket < kBoundsUs.size() && value > kBoundsUs[bucket]) ++bucket;
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(value, std::memory_order_relaxed);
  }

  struct Snapshot {
    std::array<std::uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    std::uint64_t sum_us = 0;
  };
  Snapshot Read() const;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

// One queue's counters; each Registration owns one. Those of the I/O thread and those of the
// workers sit on cache lines of their own, so that the two sides do not contend for one line.
struct QueueMetrics {
  // Written by the I/O thread.
  struct alignas(64) Dispatch {
    void Received(bool redelivered) {
      deliveries.Add();
      if (redelivered) redeliveries.Add();
    }

    Counter deliveries;    // deliveries received from the broker
    Counter redeliveries;  // of which the broker had delivered before (redelivered flag)
    Counter dead_letters;  // dead-lettered by workflowd: published there, or rejected to it
  } dispatch;
  // Written by the workers.
  struct alignas(64) Handling {
    Counter runs;    // handler calls
    Counter errors;  // of which failed (threw), retried or final
    LatencyHistogram latency;  // how long each call took
  } handling;
};

// Counts one handler call and times it, from construction to destruction (also when the
// handler throws through it).
class HandlerCall {
 public:
  explicit HandlerCall(QueueMetrics::Handling& handling)
      : handling_(handling), start_(std::chrono::steady_clock::now()) {}
  ~HandlerCall() {
    handling_.runs.Add();
    handling_.latency.Observe(std::chrono::steady_clock::now() - start_);
  }
  HandlerCall(const HandlerCall&) = delete;
  HandlerCall& operator=(const HandlerCall&) = delete;

 private:
  QueueMetrics::Handling& handling_;
  std::chrono::steady_clock::time_point start_;
};

// What is not per queue.
struct DaemonMetrics {
  Gauge broker_connected;  // 1 while consumers are attached, else 0
  Counter reconnects;      // sessions attached after the first one
  Gauge in_flight;         // deliveries handed to workers and not yet settled
  // From publishing a group of messages (a handler's sends, a dead letter, a delayed retry, a
  // FlushMessages) to the broker's confirm of the last of them.
  LatencyHistogram publish_confirm;
};

class HandlerRegistry;

// The Prometheus text exposition (format 0.0.4) of every metric: per queue, in the registry's
// order, then the daemon's own.
std::string RenderMetrics(const HandlerRegistry& registry, const DaemonMetrics& daemon);

}  // namespace workflowd
