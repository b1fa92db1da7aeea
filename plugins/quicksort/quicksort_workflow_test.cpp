// The quicksort workflow, loaded as workflowd loads it, in the SDK's test runtime: a list sorted
// end to end through fan-out (quicksort_split) and fan-in (quicksort_merge), its edge cases, its
// refusals, and the merge stage's handling of a redelivered piece.
#include <workflow/testing.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using workflow::Message;
using workflow::testing::CallResult;
using workflow::testing::IncidentStatus;
using workflow::testing::Outcome;
using workflow::testing::TestRuntime;
using Numbers = std::vector<std::int64_t>;

Message WithNumbers(std::string_view incident, const Numbers& numbers) {
  Message message = Message::ForIncident(incident);
  rapidjson::Value array(rapidjson::kArrayType);
  for (std::int64_t number : numbers) array.PushBack(number, message.allocator());
  message.Set("numbers", std::move(array));
  return message;
}

Message Piece(std::string_view incident, std::string_view node, std::string_view slot,
              const Numbers& numbers) {
  Message message = WithNumbers(incident, numbers);
  message.Set("node", node).Set("slot", slot);
  return message;
}

Numbers ReadNumbers(const Message& message) {
  Numbers numbers;
  for (const auto& value : message.Get("numbers").GetArray()) numbers.push_back(value.GetInt64());
  return numbers;
}

Numbers Sorted(Numbers numbers) {
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

// A sort run end to end: what arrived on quicksort_result and every delivery on the way.
struct Sort {
  std::string incident;
  std::vector<CallResult> deliveries;
  std::vector<workflow::testing::SentMessage> results;
};

Sort RunSort(TestRuntime& runtime, const Numbers& numbers) {
  Sort sort{.incident = workflow::CreateIncident("sort", "quicksort")};
  runtime.Send("quicksort_init", WithNumbers(sort.incident, numbers));
  sort.deliveries = runtime.RunUntilIdle();
  sort.results = runtime.Take("quicksort_result");
  return sort;
}

std::size_t CountDeliveries(const Sort& sort, std::string_view queue) {
  return std::count_if(sort.deliveries.begin(), sort.deliveries.end(),
                       [&](const CallResult& result) { return result.queue == queue; });
}

// Checks that the sort ran without a failure and published exactly the sorted numbers.
void CheckSorted(TestRuntime& runtime, const Sort& sort, const Numbers& numbers) {
  for (const CallResult& delivery : sort.deliveries) {
    INFO(delivery.handler << " on " << delivery.queue << ": " << delivery.reason);
    CHECK(delivery.outcome == Outcome::kHandled);
  }
  REQUIRE(sort.results.size() == 1);
  const workflow::testing::SentMessage& result = sort.results[0];
  CHECK(result.body.incident_id() == sort.incident);
  CHECK(result.body.GetString("slot") == "result");
  CHECK(result.body.GetString("node").empty());
  CHECK(ReadNumbers(result.body) == Sorted(numbers));
  CHECK(runtime.Incident(sort.incident).status == IncidentStatus::kComplete);
}

Numbers RandomNumbers(std::size_t count, std::int64_t low, std::int64_t high) {
  std::mt19937_64 generator(20240611);
  std::uniform_int_distribution<std::int64_t> distribution(low, high);
  Numbers numbers(count);
  for (std::int64_t& number : numbers) number = distribution(generator);
  return numbers;
}

}  // namespace

TEST_CASE("A thousand numbers are sorted through fan-out and fan-in, and the incident completes") {
  TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  // From a range narrower than the count, so that there are duplicates, and negative numbers.
  const Numbers numbers = RandomNumbers(1000, -300, 300);

  Sort sort = RunSort(runtime, numbers);

  CheckSorted(runtime, sort, numbers);
  CHECK(sort.results[0].originator == "quicksort_merge");
  CHECK(sort.results[0].src_tag == "merge");
  CHECK(sort.results[0].dest_tag == "result");
  // It fanned out: many parts split, many pieces joined.
  CHECK(CountDeliveries(sort, "quicksort_split") > 50);
  CHECK(CountDeliveries(sort, "quicksort_merge") > 50);
  // Every piece of every node was kept once.
  std::set<std::pair<std::string, std::string>> pieces;
  const std::vector<Message> kept = runtime.Persisted(sort.incident, "quicksort_merge");
  for (const Message& piece : kept) {
    pieces.emplace(piece.GetString("node"), piece.GetString("slot"));
  }
  CHECK(pieces.size() == kept.size());
  CHECK(kept.size() == CountDeliveries(sort, "quicksort_merge"));
}

TEST_CASE("Lists that need no split, or that split badly, are sorted too") {
  TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  Numbers ascending(200), descending(200);
  for (std::int64_t i = 0; i < 200; ++i) {
    ascending[i] = i;
    descending[i] = 200 - i;
  }
  const Numbers numbers = GENERATE_COPY(values<Numbers>({
      {},                    // empty
      {42},                  // one number
      {3, -1, 3, 2, -1, 3},  // duplicates, sorted at once
      Numbers(300, 7),       // one value only: the pivot takes everything
      ascending,             // the median of three keeps these from degrading
      descending,
  }));
  INFO(numbers.size() << " numbers");

  Sort sort = RunSort(runtime, numbers);

  CheckSorted(runtime, sort, numbers);
}

TEST_CASE("A message without integer numbers fails the incident, naming the problem") {
  TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("sort", "quicksort");
  auto [body, reason] = GENERATE(table<std::string, std::string>({
      {R"({"numbers":[1,2.5,3]})", "field 'numbers' holds a non-integer"},
      {R"({"numbers":"1,2,3"})", "field 'numbers' is not an array"},
      {R"({"values":[1,2,3]})", "message field 'numbers' is missing"},
  }));
  Message start = Message::Parse(body);
  start.Set(workflow::kIncidentIdField, incident);

  CallResult init = runtime.Deliver("quicksort_init", std::move(start));

  CHECK(init.outcome == Outcome::kThrew);
  CHECK(init.reason == reason);
  CHECK(init.sent.empty());
  CHECK(runtime.Incident(incident).status == IncidentStatus::kError);
  CHECK(runtime.Incident(incident).reason == "handler quicksort_init failed: " + reason);
}

TEST_CASE("quicksort_split sends a large part's equals to merge and each side back to split") {
  TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("sort", "quicksort");
  Numbers numbers = RandomNumbers(40, 0, 1000);
  numbers.front() = numbers[numbers.size() / 2] = numbers.back() = 500;  // the median of three

  CallResult split = runtime.Deliver("quicksort_split", Piece(incident, "L", "all", numbers));

  REQUIRE(split.sent.size() == 3);
  CHECK(split.sent[0].queue == "quicksort_merge");
  CHECK(split.sent[0].body.GetString("node") == "L");
  CHECK(split.sent[0].body.GetString("slot") == "equal");
  CHECK(ReadNumbers(split.sent[0].body) == Numbers(std::count(numbers.begin(), numbers.end(), 500), 500));
  const Numbers left = ReadNumbers(split.sent[1].body), right = ReadNumbers(split.sent[2].body);
  CHECK(split.sent[1].queue == "quicksort_split");
  CHECK(split.sent[1].body.GetString("node") == "LL");
  CHECK(std::all_of(left.begin(), left.end(), [](std::int64_t n) { return n < 500; }));
  CHECK(split.sent[2].queue == "quicksort_split");
  CHECK(split.sent[2].body.GetString("node") == "LR");
  CHECK(std::all_of(right.begin(), right.end(), [](std::int64_t n) { return n > 500; }));
  CHECK(left.size() + right.size() + ReadNumbers(split.sent[0].body).size() == numbers.size());
}

TEST_CASE("quicksort_merge keeps a redelivered piece once and joins again") {
  TestRuntime runtime;
  runtime.LoadPlugin(WORKFLOW_PLUGIN_FILE);
  const std::string incident = workflow::CreateIncident("sort", "quicksort");

  CHECK(runtime.Deliver("quicksort_merge", Piece(incident, "R", "left", {1, 2})).sent.empty());
  CHECK(runtime.Deliver("quicksort_merge", Piece(incident, "R", "left", {1, 2})).sent.empty());
  CHECK(runtime.Deliver("quicksort_merge", Piece(incident, "R", "equal", {3})).sent.empty());
  CallResult joined = runtime.Deliver("quicksort_merge", Piece(incident, "R", "right", {4, 5}));
  // The join's first run may have died before its send went out: a redelivery joins again.
  CallResult again = runtime.Deliver("quicksort_merge", Piece(incident, "R", "right", {4, 5}));

  CHECK(runtime.Persisted(incident, "quicksort_merge").size() == 3);
  for (const CallResult* merge : {&joined, &again}) {
    REQUIRE(merge->sent.size() == 1);
    CHECK(merge->sent[0].queue == "quicksort_merge");
    CHECK(merge->sent[0].body.GetString("node").empty());
    CHECK(merge->sent[0].body.GetString("slot") == "right");
    CHECK(ReadNumbers(merge->sent[0].body) == Numbers{1, 2, 3, 4, 5});
  }
  CHECK(runtime.Incident(incident).status == IncidentStatus::kActive);
}
