#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace workflowd {

// Tells systemd how the daemon is doing (Type=notify): one datagram per call to
// $NOTIFY_SOCKET, through libsystemd's sd_notify. Outside systemd (no NOTIFY_SOCKET) every
// call does nothing. A failed send is logged, never thrown: the daemon's work goes on, and
// systemd acts on what it did not hear (a start timeout, a watchdog kill).
class SystemdNotifier {
 public:
  // Reads the watchdog settings once (WATCHDOG_USEC, for this process by WATCHDOG_PID).
  SystemdNotifier();

  // READY=1 with a status line: plugins are registered and consumers attached.
  void Ready(std::string_view status) const;
  // STATUS=<status>: shown by systemctl status, e.g. while waiting for the broker.
  void Status(std::string_view status) const;
  // WATCHDOG=1: the daemon is making progress. Send it at least twice per watchdog_timeout().
  void Watchdog() const;
  // STOPPING=1 with a status line: shutdown has begun.
  void Stopping(std::string_view status) const;

  // WatchdogSec= of the unit when systemd expects WATCHDOG=1 from this process, else nullopt.
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_timeout_; }

 private:
  void Send(const std::string& state) const;

  std::optional<std::chrono::microseconds> watchdog_timeout_;
};

}  // namespace workflowd
