#include "health_monitor.hpp"

#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace workflowd {
namespace {

using std::chrono::duration_cast;
using std::chrono::seconds;

// Reasons come from the broker and the network: keep the JSON valid whatever bytes they hold.
std::string Ascii(std::string_view text) {
  std::string clean(text);
  for (char& c : clean) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
  }
  return clean;
}

}  // namespace

HealthMonitor::HealthMonitor(DispatcherEvents& inner, DaemonMetrics& metrics, unsigned workers,
                             seconds stall_timeout)
    : inner_(inner),
      metrics_(metrics),
      workers_(workers),
      stall_timeout_(stall_timeout),
      last_pass_(Clock::now().time_since_epoch().count()),
      last_settled_(Clock::now().time_since_epoch().count()),
      broker_problem_("not connected yet") {}

void HealthMonitor::OnConsuming(std::size_t queues) {
  if (attached_before_) metrics_.reconnects.Add();
  attached_before_ = true;
  consumers_.store(queues, std::memory_order_relaxed);
  connected_.store(true, std::memory_order_relaxed);
  metrics_.broker_connected.Set(1);
  inner_.OnConsuming(queues);
}

void HealthMonitor::OnBrokerLost(std::string_view reason, std::chrono::milliseconds retry_in) {
  {
    std::lock_guard lock(mutex_);
    broker_problem_ = Ascii(reason);
  }
  connected_.store(false, std::memory_order_relaxed);
  consumers_.store(0, std::memory_order_relaxed);
  metrics_.broker_connected.Set(0);
  inner_.OnBrokerLost(reason, retry_in);
}

void HealthMonitor::OnStopping() {
  stopping_.store(true, std::memory_order_relaxed);
  consumers_.store(0, std::memory_order_relaxed);
  inner_.OnStopping();
}

void HealthMonitor::OnLoopPass(Clock::time_point last_settled, std::size_t in_flight) {
  last_pass_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  last_settled_.store(last_settled.time_since_epoch().count(), std::memory_order_relaxed);
  in_flight_.store(in_flight, std::memory_order_relaxed);
  metrics_.in_flight.Set(static_cast<std::int64_t>(in_flight));
  inner_.OnLoopPass(last_settled, in_flight);
}

std::optional<std::uint16_t> HealthMonitor::OnReload() { return inner_.OnReload(); }

HealthMonitor::Report HealthMonitor::Check(Clock::time_point now) const {
  const bool connected = connected_.load(std::memory_order_relaxed);
  const bool stopping = stopping_.load(std::memory_order_relaxed);
  const std::size_t consumers = consumers_.load(std::memory_order_relaxed);
  const std::size_t in_flight = in_flight_.load(std::memory_order_relaxed);
  const Clock::duration since_pass = now - Clock::time_point(Clock::duration(last_pass_.load(std::memory_order_relaxed)));
  const Clock::duration since_settled =
      now - Clock::time_point(Clock::duration(last_settled_.load(std::memory_order_relaxed)));
  const bool io_progressing = since_pass <= kLoopStall;
  const bool workers_progressing = in_flight <= workers_ || since_settled <= stall_timeout_;

  std::vector<std::string> problems;
  if (stopping) problems.push_back("stopping: consumers are cancelled, in-flight deliveries drain");
  if (!connected) {
    std::lock_guard lock(mutex_);
    problems.push_back("not connected to the broker: " + broker_problem_);
  } else if (consumers == 0 && !stopping) {
    problems.push_back("no consumers attached");
  }
  if (!io_progressing) {
    problems.push_back("the I/O thread has not turned for " +
                       std::to_string(duration_cast<seconds>(since_pass).count()) + " s");
  }
  if (!workers_progressing) {
    problems.push_back("no handler has finished for " +
                       std::to_string(duration_cast<seconds>(since_settled).count()) + " s with " +
                       std::to_string(in_flight) + " deliveries in flight");
  }

  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("status");
  writer.String(problems.empty() ? "ok" : "unavailable");
  writer.Key("broker_connected");
  writer.Bool(connected);
  writer.Key("consumers");
  writer.Uint64(consumers);
  writer.Key("io_progressing");
  writer.Bool(io_progressing);
  writer.Key("workers_progressing");
  writer.Bool(workers_progressing);
  writer.Key("in_flight");
  writer.Uint64(in_flight);
  writer.Key("problems");
  writer.StartArray();
  for (const std::string& problem : problems) {
    writer.String(problem.c_str(), static_cast<rapidjson::SizeType>(problem.size()));
  }
  writer.EndArray();
  writer.EndObject();
  return Report{problems.empty(), std::string(buffer.GetString(), buffer.GetSize()) + "\n"};
}

}  // namespace workflowd
