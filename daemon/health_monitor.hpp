#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "dispatcher_events.hpp"
#include "metrics.hpp"

namespace workflowd {

// Watches the dispatcher's events on their way to the service around it (systemd): it keeps
// what /health reports and the daemon-wide gauges of the metrics, and forwards every event
// unchanged. The events come from the I/O thread; Check may be called from any thread.
class HealthMonitor final : public DispatcherEvents {
 public:
  using Clock = std::chrono::steady_clock;

  // The I/O loop turns at least every second; this long without a turn means it is stuck.
  static constexpr std::chrono::seconds kLoopStall{10};

  // Workers are stuck when more than `workers` deliveries are in flight and none has finished
  // for stall_timeout (the rule of the systemd watchdog).
  HealthMonitor(DispatcherEvents& inner, DaemonMetrics& metrics, unsigned workers,
                std::chrono::seconds stall_timeout);

  void OnConsuming(std::size_t queues) override;
  void OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) override;
  void OnStopping() override;
  void OnLoopPass(Clock::time_point last_settled, std::size_t in_flight) override;
  std::optional<std::uint16_t> OnReload() override;

  struct Report {
    bool healthy = false;
    // {"status":"ok"|"unavailable","broker_connected":...,"consumers":N,"io_progressing":...,
    //  "workers_progressing":...,"in_flight":N,"problems":["...", ...]}
    std::string json;
  };
  // Healthy when connected with consumers attached, not stopping, and both the I/O loop and
  // the workers make progress; otherwise the problems say which is not.
  Report Check(Clock::time_point now = Clock::now()) const;

 private:
  DispatcherEvents& inner_;
  DaemonMetrics& metrics_;
  const unsigned workers_;
  const Clock::duration stall_timeout_;

  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> consumers_{0};
  std::atomic<std::size_t> in_flight_{0};
  // Clock::time_point::time_since_epoch() counts.
  std::atomic<Clock::rep> last_pass_;
  std::atomic<Clock::rep> last_settled_;
  bool attached_before_ = false;  // I/O thread only

  mutable std::mutex mutex_;
  std::string broker_problem_;  // guarded by mutex_: why the broker is not connected
};

}  // namespace workflowd
