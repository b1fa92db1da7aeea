// The workflow the integration tests drive: pipeline_in -> pipeline_mid -> pipeline_out, where
// pipeline_out has no handler and the test reads it. The body's fields steer each run:
//   "sleep_ms": N      relay_mid sleeps, so that runs overlap
//   "throw": true      relay_mid sends, then throws (its send must be dropped)
//   "flush": true      relay_mid sends and flushes, then throws (the flushed send stays)
//   "nowhere": true    relay_mid sends to a queue that does not exist
//   "abort": true      relay_mid crashes the process (abort()), as a broken handler would
// relay_mid stamps "max_concurrency", the most runs it has seen at once, into what it sends.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <workflow/workflow.hpp>

namespace {

std::atomic<int> running{0};
std::atomic<int> max_running{0};

// Counts this run as running while it lives.
class RunningScope {
 public:
  RunningScope() {
    int now = ++running;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
  }
  ~RunningScope() { --running; }
};

bool Flag(const workflow::Message& message, std::string_view key) {
  return message.Has(key) && message.GetBool(key);
}

void relay_in(workflow::Message& message) { workflow::send(message, "pipeline_mid"); }

void relay_mid(workflow::Message& message) {
  RunningScope scope;
  if (Flag(message, "abort")) std::abort();
  if (message.Has("sleep_ms")) {
    std::this_thread::sleep_for(std::chrono::milliseconds(message.GetInt("sleep_ms")));
  }
  message.Set("max_concurrency", max_running.load());
  if (Flag(message, "nowhere")) {
    workflow::send(message, "pipeline_no_such_queue");
    return;
  }
  workflow::send(message, "pipeline_out", "mid", "out");
  if (Flag(message, "flush")) {
    workflow::FlushMessages();
    throw std::runtime_error("failing after a flush, as asked");
  }
  if (Flag(message, "throw")) throw std::runtime_error("failing, as asked");
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(relay_in), "pipeline_in");
  workflow::RegisterHandler(WORKFLOW_HANDLER(relay_mid), "pipeline_mid");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
