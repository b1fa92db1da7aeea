#include "systemd_service.hpp"

#include <spdlog/spdlog.h>

#include "config.hpp"
#include "logging.hpp"

namespace workflowd {

using Clock = std::chrono::steady_clock;

SystemdService::SystemdService(std::filesystem::path config_file, const Settings& settings)
    : config_file_(std::move(config_file)),
      settings_(settings),
      broker_(settings.broker.host + ":" + std::to_string(settings.broker.port)) {}

void SystemdService::Starting() { notifier_.Status("connecting to the broker at " + broker_); }

void SystemdService::OnConsuming(std::size_t queues) {
  // After a reconnect READY=1 comes again, which systemd ignores, with a fresh status line.
  notifier_.Ready("consuming " + std::to_string(queues) + " queue(s) from " + broker_);
}

void SystemdService::OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) {
  notifier_.Status("waiting for the broker at " + broker_ + ": " + std::string(reason) + "; next try in " +
                   std::to_string(retry_in.count()) + " ms");
}

void SystemdService::OnStopping() { notifier_.Stopping("draining in-flight deliveries"); }

void SystemdService::OnLoopPass(Clock::time_point last_settled, std::size_t in_flight) {
  const std::optional<std::chrono::microseconds> timeout = notifier_.watchdog_timeout();
  if (!timeout) return;
  const Clock::time_point now = Clock::now();
  if (now - last_watchdog_ < *timeout / 4) return;
  // The loop turns, so the I/O thread lives. The workers are stuck when deliveries wait and
  // none has finished for a whole watchdog period: then let systemd restart the daemon (the
  // deliveries come back). WatchdogSec must exceed the longest handler run.
  if (in_flight > settings_.workers && now - last_settled > *timeout) {
    spdlog::error("no handler has finished for {} s with {} deliveries waiting: withholding the "
                  "watchdog ping",
                  std::chrono::duration_cast<std::chrono::seconds>(now - last_settled).count(), in_flight);
    return;
  }
  notifier_.Watchdog();
  last_watchdog_ = now;
}

std::optional<std::uint16_t> SystemdService::OnReload() {
  spdlog::info("SIGHUP: re-reading {}", config_file_.string());
  Settings fresh;
  ConfigWarnings warnings;
  try {
    fresh = LoadConfig(config_file_, &warnings);
  } catch (const ConfigError& error) {
    spdlog::error("reload refused, the running settings stay: {}", error.what());
    return std::nullopt;
  }
  for (const std::string& warning : warnings) spdlog::warn("reload: {}", warning);
  std::optional<std::uint16_t> prefetch;
  if (fresh.log_level != settings_.log_level) {
    SetLogLevel(fresh.log_level);
    settings_.log_level = fresh.log_level;
    spdlog::info("reload: log_level changed");
  }
  if (fresh.broker.prefetch != settings_.broker.prefetch) {
    spdlog::info("reload: prefetch {} -> {}", settings_.broker.prefetch, fresh.broker.prefetch);
    settings_.broker.prefetch = fresh.broker.prefetch;
    prefetch = fresh.broker.prefetch;
  }
  // Everything else is wired into the running daemon: say that a restart would change it.
  if (fresh != settings_) {
    spdlog::warn("reload: other settings changed too (broker, workers, plugins, queues, state or metrics); "
                 "they take effect at the next restart");
  }
  notifier_.Ready("reloaded; consuming from " + broker_);
  return prefetch;
}

}  // namespace workflowd
