#include "metrics.hpp"

#include "handler_registry.hpp"
#include "prometheus_text.hpp"

namespace workflowd {
namespace {

using Label = PrometheusText::Label;

// A per-queue counter family: its name, help and which counter of a queue it shows.
struct QueueCounter {
  std::string_view name;
  std::string_view help;
  const Counter& (*of)(const QueueMetrics&);
};

constexpr QueueCounter kQueueCounters[] = {
    {"workflowd_deliveries_total", "Deliveries received from the broker.",
     [](const QueueMetrics& m) -> const Counter& { return m.dispatch.deliveries; }},
    {"workflowd_redeliveries_total",
     "Deliveries the broker had delivered before (after a lost connection, a crash or a requeue).",
     [](const QueueMetrics& m) -> const Counter& { return m.dispatch.redeliveries; }},
    {"workflowd_handler_runs_total", "Handler calls.",
     [](const QueueMetrics& m) -> const Counter& { return m.handling.runs; }},
    {"workflowd_handler_errors_total", "Handler calls that ended by an exception, retried or final.",
     [](const QueueMetrics& m) -> const Counter& { return m.handling.errors; }},
    {"workflowd_dead_letters_total",
     "Deliveries workflowd dead-lettered: unreadable, too large, or sending to a queue that does "
     "not exist.",
     [](const QueueMetrics& m) -> const Counter& { return m.dispatch.dead_letters; }},
};

}  // namespace

LatencyHistogram::Snapshot LatencyHistogram::Read() const {
  Snapshot snapshot;
  for (std::size_t i = 0; i < kBuckets; ++i) snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
  snapshot.sum_us = sum_us_.load(std::memory_order_relaxed);
  return snapshot;
}

std::string RenderMetrics(const HandlerRegistry& registry, const DaemonMetrics& daemon) {
  PrometheusText text;
  const auto& registrations = registry.registrations();
  for (const QueueCounter& family : kQueueCounters) {
    text.Family(family.name, "counter", family.help);
    for (const Registration& registration : registrations) {
      const Label queue[] = {{"queue", registration.queue}};
      text.Sample(family.name, queue, family.of(*registration.metrics).value());
    }
  }
  text.Family("workflowd_handler_duration_seconds", "histogram", "How long handler calls took.");
  for (const Registration& registration : registrations) {
    const Label queue[] = {{"queue", registration.queue}};
    text.Histogram("workflowd_handler_duration_seconds", queue, registration.metrics->handling.latency.Read());
  }

  text.Family("workflowd_broker_connected", "gauge", "1 while connected to the broker with consumers attached.");
  text.Sample("workflowd_broker_connected", {}, daemon.broker_connected.value());
  text.Family("workflowd_reconnects_total", "counter", "Connections to the broker after the first one.");
  text.Sample("workflowd_reconnects_total", {}, daemon.reconnects.value());
  text.Family("workflowd_in_flight", "gauge", "Deliveries handed to workers and not yet settled.");
  text.Sample("workflowd_in_flight", {}, daemon.in_flight.value());
  text.Family("workflowd_publish_confirm_seconds", "histogram",
              "From publishing a group of messages (a handler's sends, a dead letter, a retry) to "
              "the broker's confirm of the last one.");
  text.Histogram("workflowd_publish_confirm_seconds", {}, daemon.publish_confirm.Read());
  return text.Take();
}

}  // namespace workflowd
