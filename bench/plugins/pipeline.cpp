// The benchmark's two-stage pipeline, the shape of bare_relay: pipeline_in -> relay_in ->
// pipeline_mid -> relay_mid -> pipeline_out, where the benchmark reads pipeline_out. relay_mid
// sends with src/dest tags, so that the second hop carries headers as a tagged workflow's does.
//
// Where the body has the hop fields (the latency phase's bodies do), relay_in stamps hop_sent as
// it sends and relay_mid stamps hop_received as it starts (bench/hop_stamp.hpp).

#include <workflow/workflow.hpp>

#include "../hop_stamp.hpp"

namespace {

using workflowd::bench::kHopReceived;
using workflowd::bench::kHopSent;
using workflowd::bench::SetStamp;
using workflowd::bench::NowNs;

void relay_in(workflow::Message& message) {
  if (message.Has(kHopSent)) SetStamp(message, kHopSent, NowNs());
  workflow::send(message, "pipeline_mid");
}

void relay_mid(workflow::Message& message) {
  if (message.Has(kHopReceived)) SetStamp(message, kHopReceived, NowNs());
  workflow::send(message, "pipeline_out", "mid", "out");
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(relay_in), "pipeline_in");
  workflow::RegisterHandler(WORKFLOW_HANDLER(relay_mid), "pipeline_mid");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
