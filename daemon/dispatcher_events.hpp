#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace workflowd {

// What the dispatcher tells the service around it (systemd today, metrics later). Every call
// comes from the I/O thread and must return quickly.
class DispatcherEvents {
 public:
  virtual ~DispatcherEvents() = default;

  // Consumers are attached, after the first connect and after every reconnect.
  virtual void OnConsuming(std::size_t queues) = 0;
  // The broker was lost (or not reached); the next try is in retry_in.
  virtual void OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) = 0;
  // SIGTERM or SIGINT: the dispatcher stops consuming and drains.
  virtual void OnStopping() = 0;
  // One pass of the I/O loop (at least every second). last_settled is when a worker last
  // finished a delivery, in_flight how many wait for or sit in a worker: together they tell a
  // stuck daemon from an idle one.
  virtual void OnLoopPass(std::chrono::steady_clock::time_point last_settled, std::size_t in_flight) = 0;
  // SIGHUP: re-read what can change at run time. Returns the prefetch to apply to the channel
  // when it changed.
  virtual std::optional<std::uint16_t> OnReload() = 0;
};

}  // namespace workflowd
