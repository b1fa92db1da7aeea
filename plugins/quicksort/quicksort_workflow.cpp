// Quicksort as a workflow, after VESTEC's example: fan-out and fan-in through messages.
//
//   quicksort_init   {"IncidentID", "numbers": [...]}  starts a sort
//   quicksort_split  partitions a part around a pivot: each side goes back to quicksort_split,
//                    the pivot's equals go to quicksort_merge; a small part is sorted at once
//   quicksort_merge  (atomic) keeps each piece with Persist and joins a node's three pieces
//                    (left, equal, right) once all have arrived, passing the result up to its
//                    parent; the root's result is published to quicksort_result and the
//                    incident completes
//
// Nodes are named by their path from the root ("", "L", "LR", ...). The join reads what was
// persisted and writes one more piece: that read-then-write is race-free only because the
// merge stage is atomic, which runs it once at a time per incident, across threads and daemons.

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <workflow/workflow.hpp>

namespace {

constexpr std::size_t kSortDirectlyAtMost = 16;

using Numbers = std::vector<std::int64_t>;

Numbers ReadNumbers(const workflow::Message& message) {
  const rapidjson::Value& array = message.Get("numbers");
  if (!array.IsArray()) throw workflow::MessageError("field 'numbers' is not an array");
  Numbers numbers;
  numbers.reserve(array.Size());
  for (const auto& value : array.GetArray()) {
    if (!value.IsInt64()) throw workflow::MessageError("field 'numbers' holds a non-integer");
    numbers.push_back(value.GetInt64());
  }
  return numbers;
}

workflow::Message Piece(std::string_view incident, std::string_view node, std::string_view slot,
                        const Numbers& numbers) {
  workflow::Message message = workflow::Message::ForIncident(incident);
  message.Set("node", node).Set("slot", slot);
  rapidjson::Value array(rapidjson::kArrayType);
  for (std::int64_t number : numbers) array.PushBack(number, message.allocator());
  message.Set("numbers", std::move(array));
  return message;
}

// Sends a node's sorted numbers to where its parent joins them, or publishes the answer.
void Deliver(std::string_view incident, const std::string& node, const Numbers& sorted) {
  if (node.empty()) {
    bool ordered = std::is_sorted(sorted.begin(), sorted.end());
    std::fprintf(stderr, "quicksort: incident %.*s sorted %zu numbers%s\n", static_cast<int>(incident.size()),
                 incident.data(), sorted.size(), ordered ? ", in order" : ", OUT OF ORDER");
    workflow::send(Piece(incident, node, "result", sorted), "quicksort_result", "merge", "result");
    workflow::Complete(incident);
    return;
  }
  std::string parent = node.substr(0, node.size() - 1);
  workflow::send(Piece(incident, parent, node.back() == 'L' ? "left" : "right", sorted), "quicksort_merge",
                 "split", "merge");
}

void quicksort_init(workflow::Message& message) {
  workflow::send(Piece(message.incident_id(), "", "all", ReadNumbers(message)), "quicksort_split", "init",
                 "split");
}

void quicksort_split(workflow::Message& message) {
  Numbers numbers = ReadNumbers(message);
  std::string node(message.GetString("node"));
  if (numbers.size() <= kSortDirectlyAtMost) {
    std::sort(numbers.begin(), numbers.end());
    Deliver(message.incident_id(), node, numbers);
    return;
  }
  // Median of three, so sorted input does not degrade to one level per number.
  std::int64_t a = numbers.front(), b = numbers[numbers.size() / 2], c = numbers.back();
  std::int64_t pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
  Numbers left, equal, right;
  for (std::int64_t number : numbers) (number < pivot ? left : number == pivot ? equal : right).push_back(number);
  std::string_view incident = message.incident_id();
  workflow::send(Piece(incident, node, "equal", equal), "quicksort_merge", "split", "merge");
  workflow::send(Piece(incident, node + "L", "all", left), "quicksort_split", "split", "split");
  workflow::send(Piece(incident, node + "R", "all", right), "quicksort_split", "split", "split");
}

void quicksort_merge(workflow::Message& message) {
  std::string_view incident = message.incident_id();
  const std::string node(message.GetString("node"));
  std::optional<Numbers> left, equal, right;
  auto slot_of = [&](std::string_view slot) -> std::optional<Numbers>& {
    return slot == "left" ? left : slot == "right" ? right : equal;
  };
  // The pieces of this node kept so far. A redelivered piece finds its own copy and is not kept
  // twice, but the join still runs: the first delivery may have died before sending it on.
  bool kept = false;
  for (const workflow::Message& piece : workflow::Persist::Get(incident)) {
    if (piece.GetString("node") != node) continue;
    kept |= piece.GetString("slot") == message.GetString("slot");
    slot_of(piece.GetString("slot")) = ReadNumbers(piece);
  }
  if (!kept) {
    slot_of(message.GetString("slot")) = ReadNumbers(message);
    workflow::Persist::Put(incident, message);
  }
  if (!left || !equal || !right) return;
  Numbers joined = std::move(*left);
  joined.insert(joined.end(), equal->begin(), equal->end());
  joined.insert(joined.end(), right->begin(), right->end());
  Deliver(incident, node, joined);
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_init), "quicksort_init");
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_split), "quicksort_split");
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_merge), "quicksort_merge", {.atomic = true});
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
