// Stages the state integration tests drive: incidents, Persist, atomic handlers and retries.
//   join_atomic (atomic), join_racy   read how many "end" records the incident has, wait
//       "sleep_ms", then persist {"event":"end","n":that count,...}: a read-modify-write that
//       only an atomic stage keeps consistent. Each run first persists {"event":"start",...};
//       "hold_ms" makes the first run of an incident wait that long more (to be killed).
//   fail_stage     sends to state_out, then throws
//   flaky_stage    retried (3 attempts, 100 ms first delay): fails until its third attempt,
//                  then sends to state_out
//   relay_stage    sends to state_out
//   complete_stage completes the incident

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include <workflow/workflow.hpp>

namespace {

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t CountEvents(const std::vector<workflow::Message>& records, std::string_view event) {
  std::size_t count = 0;
  for (const workflow::Message& record : records) count += record.GetString("event") == event;
  return count;
}

void Join(workflow::Message& message) {
  const std::string_view incident = message.incident_id();
  const std::int64_t start = NowMs();
  const std::vector<workflow::Message> before = workflow::Persist::Get(incident);
  workflow::Message started = workflow::Message::ForIncident(incident);
  started.Set("event", "start").Set("pid", static_cast<std::int64_t>(getpid())).Set("at", start);
  workflow::Persist::Put(incident, started);
  if (message.Has("hold_ms") && CountEvents(before, "start") == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(message.GetInt("hold_ms")));
  }
  const std::int64_t n = static_cast<std::int64_t>(CountEvents(before, "end"));
  if (message.Has("sleep_ms")) std::this_thread::sleep_for(std::chrono::milliseconds(message.GetInt("sleep_ms")));
  workflow::Message ended = workflow::Message::ForIncident(incident);
  ended.Set("event", "end").Set("n", n).Set("pid", static_cast<std::int64_t>(getpid()));
  ended.Set("start", start).Set("end", NowMs());
  workflow::Persist::Put(incident, ended);
}

void join_atomic(workflow::Message& message) { Join(message); }
void join_racy(workflow::Message& message) { Join(message); }

void fail_stage(workflow::Message& message) {
  workflow::send(message, "state_out");
  throw std::runtime_error("the stage failed on purpose");
}

void flaky_stage(workflow::Message& message) {
  workflow::Message attempt = workflow::Message::ForIncident(message.incident_id());
  attempt.Set("event", "attempt").Set("at", NowMs());
  workflow::Persist::Put(message.incident_id(), attempt);
  if (workflow::Persist::Get(message.incident_id()).size() < 3) throw std::runtime_error("not yet");
  workflow::send(message, "state_out");
}

void relay_stage(workflow::Message& message) { workflow::send(message, "state_out"); }

void complete_stage(workflow::Message& message) { workflow::Complete(message.incident_id()); }

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(join_atomic), "join_atomic", {.atomic = true});
  workflow::RegisterHandler(WORKFLOW_HANDLER(join_racy), "join_racy");
  workflow::RegisterHandler(WORKFLOW_HANDLER(fail_stage), "fail_stage");
  workflow::RegisterHandler(
      WORKFLOW_HANDLER(flaky_stage), "flaky_stage",
      {.retry = {.max_attempts = 3, .first_delay = std::chrono::milliseconds(100),
                 .max_delay = std::chrono::milliseconds(1000)}});
  workflow::RegisterHandler(WORKFLOW_HANDLER(relay_stage), "relay_stage");
  workflow::RegisterHandler(WORKFLOW_HANDLER(complete_stage), "complete_stage");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
