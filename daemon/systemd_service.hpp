#pragma once

#include <filesystem>
#include <string>

#include "dispatcher_events.hpp"
#include "settings.hpp"
#include "systemd_notifier.hpp"

namespace workflowd {

// workflowd as a systemd service: READY=1 when consuming, STATUS= while the broker is away,
// STOPPING=1 on SIGTERM, WATCHDOG=1 while the daemon makes progress, and SIGHUP re-reads the
// config file for what can change without a restart (log level, prefetch), logging what
// changed and what needs a restart. Outside systemd only the reload does anything.
class SystemdService final : public DispatcherEvents {
 public:
  SystemdService(std::filesystem::path config_file, const Settings& settings);

  // STATUS= before the first connect.
  void Starting();

  void OnConsuming(std::size_t queues) override;
  void OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) override;
  void OnStopping() override;
  void OnLoopPass(std::chrono::steady_clock::time_point last_settled, std::size_t in_flight) override;
  std::optional<std::uint16_t> OnReload() override;

 private:
  SystemdNotifier notifier_;
  std::filesystem::path config_file_;
  Settings settings_;  // as now in force
  std::string broker_;  // host:port, for status lines
  std::chrono::steady_clock::time_point last_watchdog_{};
};

}  // namespace workflowd
