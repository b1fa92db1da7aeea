// Quicksort as a workflow, after VESTEC's example: fan-out and fan-in through messages.
//
//   quicksort_init   {"IncidentID", "numbers": [...]}  starts a sort
//   quicksort_split  partitions a part around a pivot; each side goes back to quicksort_split,
//                    the pivot's equals go to quicksort_merge; a small part is sorted at once
//   quicksort_merge  joins a node's three pieces (left, equal, right) once all have arrived and
//                    passes the result up to its parent's join; the root's result is the answer
//
// Nodes are named by their path from the root ("", "L", "LR", ...), so a redelivered piece
// lands on the same slot and a duplicate does no harm.
//
// The joins are held in this process's memory until the state store brings Persist and atomic
// handlers: a daemon restart mid-sort loses the partial joins of the incidents in progress.

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <workflow/workflow.hpp>

namespace {

constexpr std::size_t kSortDirectlyAtMost = 16;

using Numbers = std::vector<std::int64_t>;

Numbers ReadNumbers(const workflow::Message& message, std::string_view key) {
  const rapidjson::Value& array = message.Get(key);
  if (!array.IsArray()) throw workflow::MessageError("field '" + std::string(key) + "' is not an array");
  Numbers numbers;
  numbers.reserve(array.Size());
  for (const auto& value : array.GetArray()) {
    if (!value.IsInt64()) throw workflow::MessageError("field '" + std::string(key) + "' holds a non-integer");
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

// The pieces of one node's join.
struct Join {
  std::optional<Numbers> left, equal, right;
  bool complete() const { return left && equal && right; }
};

class Joins {
 public:
  // Stores a piece; returns the joined numbers when it was the last one.
  std::optional<Numbers> Add(const std::string& incident, const std::string& node,
                             std::string_view slot, Numbers numbers) {
    std::lock_guard lock(mutex_);
    Join& join = joins_[{incident, node}];
    (slot == "left" ? join.left : slot == "right" ? join.right : join.equal) = std::move(numbers);
    if (!join.complete()) return std::nullopt;
    Numbers joined = std::move(*join.left);
    joined.insert(joined.end(), join.equal->begin(), join.equal->end());
    joined.insert(joined.end(), join.right->begin(), join.right->end());
    joins_.erase({incident, node});
    return joined;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Join> joins_;
};

Joins joins;

// Sends a node's sorted numbers to where its parent joins them, or reports the answer.
void Deliver(std::string_view incident, const std::string& node, const Numbers& sorted) {
  if (node.empty()) {
    bool ordered = std::is_sorted(sorted.begin(), sorted.end());
    std::fprintf(stderr, "quicksort: incident %.*s sorted %zu numbers%s\n",
                 static_cast<int>(incident.size()), incident.data(), sorted.size(),
                 ordered ? ", in order" : ", OUT OF ORDER");
    return;
  }
  std::string parent = node.substr(0, node.size() - 1);
  workflow::send(Piece(incident, parent, node.back() == 'L' ? "left" : "right", sorted),
                 "quicksort_merge", "split", "merge");
}

void quicksort_init(workflow::Message& message) {
  Numbers numbers = ReadNumbers(message, "numbers");
  workflow::send(Piece(message.incident_id(), "", "all", numbers), "quicksort_split", "init", "split");
}

void quicksort_split(workflow::Message& message) {
  Numbers numbers = ReadNumbers(message, "numbers");
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
  for (std::int64_t number : numbers) {
    (number < pivot ? left : number == pivot ? equal : right).push_back(number);
  }
  std::string_view incident = message.incident_id();
  workflow::send(Piece(incident, node, "equal", equal), "quicksort_merge", "split", "merge");
  workflow::send(Piece(incident, node + "L", "all", left), "quicksort_split", "split", "split");
  workflow::send(Piece(incident, node + "R", "all", right), "quicksort_split", "split", "split");
}

void quicksort_merge(workflow::Message& message) {
  std::string incident(message.incident_id());
  std::string node(message.GetString("node"));
  std::optional<Numbers> joined =
      joins.Add(incident, node, message.GetString("slot"), ReadNumbers(message, "numbers"));
  if (joined) Deliver(incident, node, *joined);
}

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_init), "quicksort_init");
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_split), "quicksort_split");
  workflow::RegisterHandler(WORKFLOW_HANDLER(quicksort_merge), "quicksort_merge");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
