#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "crash_loop_guard.hpp"
#include "incident_cache.hpp"
#include "local_atomic_runs.hpp"
#include "message_log.hpp"
#include "settings.hpp"
#include "settlement.hpp"
#include "state_store.hpp"

namespace workflowd {

// Runs deliveries through their handlers on the worker threads, with the incident semantics:
// a message of an unknown or ended incident is not handled (NOT_PROCESSED); an atomic handler
// runs under its incident's lease or waits (briefly in this process, behind a run of its own, see
// LocalAtomicRuns; else in the delay queue); a handler that throws is retried when its policy
// says so, else its message is ERROR, its incident ERROR and its sends dropped. Every step goes
// to the message log. A message that keeps crashing the process is stopped by guard. Thread-safe;
// never throws.
class HandlerRunner {
 public:
  // How long an atomic run waits in this process for a run ahead of it (see LocalAtomicRuns): no
  // longer than its message would wait in the delay queue's first tier.
  static constexpr std::chrono::milliseconds kLocalAtomicWait{50};

  HandlerRunner(StateStore& store, IncidentCache& incidents, MessageLog& log, const StateSettings& settings,
                CrashLoopGuard& guard, std::string consumer,
                std::chrono::milliseconds local_atomic_wait = kLocalAtomicWait);

  // current_generation is the connection's, as the I/O thread moves it: a job of an older
  // connection that waited here for an atomic run until after a reconnect is dropped unrun, for
  // the broker delivers it again.
  Settlement Handle(Job&& job, const std::atomic<std::uint32_t>& current_generation);
  // For the I/O thread, once a pass's deliveries are in hand: the incident statuses they are
  // checked against reflect every change committed before (see IncidentCache).
  void RefreshIncidentStatuses() noexcept;

 private:
  class Run;

  StateStore& store_;
  IncidentCache& incidents_;
  MessageLog& log_;
  const StateSettings& settings_;
  CrashLoopGuard& guard_;
  std::string consumer_;  // host:pid, recorded as who processed a message
  LocalAtomicRuns atomic_runs_;
};

}  // namespace workflowd
