// The benchmark's fan-out/fan-in shape: pipeline_in -> fan_out, which sends kParts copies of each
// message to pipeline_mid, each with its "part"; pipeline_mid -> fan_in, which sends the message on
// to pipeline_out once every part of its "seq" has arrived. bare_relay --fan-out does the same.
//
// Both count the parts in memory, so a restart forgets the parts already seen: this is a shape
// to measure the engine's cost per message on, not a pattern for a workflow that must survive a
// crash (that one keeps its parts with Persist in an atomic handler).
//
// Where the body has the hop fields (bench/hop_stamp.hpp), fan_out stamps hop_sent once before
// it sends the parts and fan_in stamps hop_received when the last part arrives: the join's hop.

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <workflow/workflow.hpp>

#include "../hop_stamp.hpp"

namespace {

using workflowd::bench::kHopReceived;
using workflowd::bench::kHopSent;
using workflowd::bench::SetStamp;
using workflowd::bench::NowNs;

constexpr int kParts = 4;
constexpr std::uint32_t kAllParts = (1u << kParts) - 1;

std::mutex parts_mutex;
std::unordered_map<std::int64_t, std::uint32_t> parts_seen;  // seq -> a bit per part seen

void fan_out(workflow::Message& message) {
  if (message.Has(kHopSent)) SetStamp(message, kHopSent, NowNs());
  for (int part = 0; part < kParts; ++part) {
    message.Set("part", part);
    workflow::send(message, "pipeline_mid");
  }
}

void fan_in(workflow::Message& message) {
  const std::int64_t started = NowNs();
  const std::int64_t seq = message.GetInt("seq");
  const std::int64_t part = message.GetInt("part");
  if (part < 0 || part >= kParts) throw workflow::MessageError("part out of range");
  {
    std::lock_guard lock(parts_mutex);
    std::uint32_t& seen = parts_seen[seq];
    seen |= 1u << part;  // a redelivered part counts once
    if (seen != kAllParts) return;
    parts_seen.erase(seq);
  }
  if (message.Has(kHopReceived)) SetStamp(message, kHopReceived, started);
  workflow::send(message, "pipeline_out");
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(fan_out), "pipeline_in");
  workflow::RegisterHandler(WORKFLOW_HANDLER(fan_in), "pipeline_mid");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
