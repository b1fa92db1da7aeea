#include "metrics.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "handler_registry.hpp"
#include "prometheus_text.hpp"

using namespace std::chrono_literals;
using Catch::Contains;
using workflowd::DaemonMetrics;
using workflowd::HandlerCall;
using workflowd::HandlerRegistry;
using workflowd::LatencyHistogram;
using workflowd::PrometheusText;
using workflowd::QueueMetrics;
using workflowd::RenderMetrics;

namespace {

struct Sample {
  std::string name;
  std::string labels;  // as written, without the braces
  std::string value;
};

// Checks text against the exposition format 0.0.4 as Prometheus parses it, and returns its
// samples: every line is a # HELP, a # TYPE or a sample; a family's HELP and TYPE come once,
// before its samples, which are not interleaved with another family's; a sample belongs to a
// declared family (a histogram's by its _bucket, _sum and _count); label values are quoted
// with only \\, \" and \n escaped; values are numbers.
std::vector<Sample> ParseExposition(const std::string& text) {
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ([^\n\\]|\\\\|\\n)*)");
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*")*)\})? (\+Inf|-?[0-9]+(\.[0-9]+)?))");
  REQUIRE_FALSE(text.empty());
  REQUIRE(text.back() == '\n');
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helped;
  std::set<std::string> finished;  // families whose samples are over
  std::string current;              // the family of the samples being read
  std::vector<Sample> samples;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    INFO("line: " << line);
    std::smatch match;
    if (std::regex_match(line, match, kHelp)) {
      CHECK(helped.insert(match[1]).second);
    } else if (std::regex_match(line, match, kType)) {
      CHECK(helped.count(match[1]) == 1);
      CHECK(types.emplace(match[1], match[2]).second);
    } else {
      REQUIRE(std::regex_match(line, match, kSample));
      std::string family = match[1];
      if (types.count(family) == 0) {
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
          const std::string s(suffix);
          if (family.size() > s.size() && family.ends_with(s) &&
              types.count(family.substr(0, family.size() - s.size())) == 1 &&
              types.at(family.substr(0, family.size() - s.size())) == "histogram") {
            family.resize(family.size() - s.size());
            break;
          }
        }
      }
      REQUIRE(types.count(family) == 1);
      if (family != current) {
        CHECK(finished.insert(current).second);
        current = family;
      }
      CHECK(finished.count(family) == 0);
      samples.push_back(Sample{match[1], match[3], match[4]});
    }
  }
  return samples;
}

// The value of the one sample of name with exactly these labels.
std::string Value(const std::vector<Sample>& samples, const std::string& name, const std::string& labels) {
  std::vector<std::string> values;
  for (const Sample& sample : samples) {
    if (sample.name == name && sample.labels == labels) values.push_back(sample.value);
  }
  REQUIRE(values.size() == 1);
  return values[0];
}

// The le="..." labels and values of a histogram's buckets for one queue label (or none).
std::vector<std::pair<std::string, std::uint64_t>> Buckets(const std::vector<Sample>& samples,
                                                           const std::string& name,
                                                           const std::string& labels_prefix) {
  static const std::regex kLe(R"((?:^|,)le="([^"]*)\"$)");
  std::vector<std::pair<std::string, std::uint64_t>> buckets;
  for (const Sample& sample : samples) {
    if (sample.name != name + "_bucket" || !sample.labels.starts_with(labels_prefix)) continue;
    std::smatch match;
    REQUIRE(std::regex_search(sample.labels, match, kLe));
    buckets.emplace_back(match[1], std::stoull(sample.value));
  }
  return buckets;
}

workflow::Handler NoOp(std::string name) {
  return workflow::Handler{std::move(name), [](workflow::Message&) {}};
}

}  // namespace

TEST_CASE("RenderMetrics writes valid exposition text with every family, per queue", "[metrics]") {
  HandlerRegistry registry;
  registry.Add(NoOp("A_handler"), "A_queue", "simple.so");
  registry.Add(NoOp("B_handler"), "B_queue", "simple.so");
  QueueMetrics& a = *registry.Find("A_queue")->metrics;
  a.dispatch.Received(false);
  a.dispatch.Received(true);
  a.dispatch.Received(false);
  a.dispatch.dead_letters.Add();
  a.handling.runs.Add(2);
  a.handling.errors.Add();
  DaemonMetrics daemon;
  daemon.broker_connected.Set(1);
  daemon.reconnects.Add();
  daemon.in_flight.Set(7);
  daemon.publish_confirm.Observe(3ms);

  const std::string text = RenderMetrics(registry, daemon);
  const std::vector<Sample> samples = ParseExposition(text);
  CHECK(Value(samples, "workflowd_deliveries_total", R"(queue="A_queue")") == "3");
  CHECK(Value(samples, "workflowd_redeliveries_total", R"(queue="A_queue")") == "1");
  CHECK(Value(samples, "workflowd_dead_letters_total", R"(queue="A_queue")") == "1");
  CHECK(Value(samples, "workflowd_handler_runs_total", R"(queue="A_queue")") == "2");
  CHECK(Value(samples, "workflowd_handler_errors_total", R"(queue="A_queue")") == "1");
  CHECK(Value(samples, "workflowd_deliveries_total", R"(queue="B_queue")") == "0");
  CHECK(Value(samples, "workflowd_handler_duration_seconds_count", R"(queue="B_queue")") == "0");
  CHECK(Value(samples, "workflowd_broker_connected", "") == "1");
  CHECK(Value(samples, "workflowd_reconnects_total", "") == "1");
  CHECK(Value(samples, "workflowd_in_flight", "") == "7");
  CHECK(Value(samples, "workflowd_publish_confirm_seconds_count", "") == "1");
  CHECK(Value(samples, "workflowd_publish_confirm_seconds_sum", "") == "0.003");
  CHECK_THAT(text, Contains("# TYPE workflowd_handler_duration_seconds histogram\n"));
  CHECK_THAT(text, Contains("# TYPE workflowd_in_flight gauge\n"));
}

TEST_CASE("histogram buckets are cumulative, ordered, and end at +Inf with the count", "[metrics]") {
  HandlerRegistry registry;
  registry.Add(NoOp("A_handler"), "A_queue", "simple.so");
  LatencyHistogram& latency = registry.Find("A_queue")->metrics->handling.latency;
  latency.Observe(300us);      // first bucket (0.0005)
  latency.Observe(500us);      // on a bound: that bucket (le is <=)
  latency.Observe(3ms);        // 0.005
  latency.Observe(3ms);        // 0.005
  latency.Observe(10min);      // beyond the last bound: +Inf only
  latency.Observe(-1ms);       // a clock that went back counts as 0

  const std::vector<Sample> samples = ParseExposition(RenderMetrics(registry, DaemonMetrics{}));
  const auto buckets = Buckets(samples, "workflowd_handler_duration_seconds", R"(queue="A_queue")");
  REQUIRE(buckets.size() == LatencyHistogram::kBuckets);
  CHECK(buckets.front() == std::pair<std::string, std::uint64_t>{"0.0005", 3});
  CHECK(buckets[1] == std::pair<std::string, std::uint64_t>{"0.001", 3});
  CHECK(buckets[2] == std::pair<std::string, std::uint64_t>{"0.0025", 3});
  CHECK(buckets[3] == std::pair<std::string, std::uint64_t>{"0.005", 5});
  CHECK(buckets[buckets.size() - 2] == std::pair<std::string, std::uint64_t>{"300", 5});
  CHECK(buckets.back() == std::pair<std::string, std::uint64_t>{"+Inf", 6});
  double previous_bound = 0;
  std::uint64_t previous_count = 0;
  for (std::size_t i = 0; i + 1 < buckets.size(); ++i) {
    INFO("le=" << buckets[i].first);
    const double bound = std::stod(buckets[i].first);
    CHECK(bound > previous_bound);
    CHECK(buckets[i].second >= previous_count);
    previous_bound = bound;
    previous_count = buckets[i].second;
  }
  CHECK(Value(samples, "workflowd_handler_duration_seconds_count", R"(queue="A_queue")") == "6");
  CHECK(Value(samples, "workflowd_handler_duration_seconds_sum", R"(queue="A_queue")") == "600.0068");
}

TEST_CASE("HandlerCall counts a run and its duration, also when the handler throws", "[metrics]") {
  QueueMetrics metrics;
  { const HandlerCall call(metrics.handling); }
  try {
    const HandlerCall call(metrics.handling);
    throw std::runtime_error("handler failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(metrics.handling.runs.value() == 2);
  const LatencyHistogram::Snapshot snapshot = metrics.handling.latency.Read();
  std::uint64_t observed = 0;
  for (std::uint64_t count : snapshot.counts) observed += count;
  CHECK(observed == 2);
}

TEST_CASE("PrometheusText escapes label values and help text as the format asks", "[metrics]") {
  PrometheusText text;
  text.Family("odd_total", "counter", "a \\ backslash\nand a \"quote\"");
  const PrometheusText::Label labels[] = {{"queue", "a\"b\\c\nd"}, {"kind", "plain"}};
  text.Sample("odd_total", labels, std::uint64_t{5});
  text.Family("level", "gauge", "can go below zero");
  text.Sample("level", {}, std::int64_t{-3});
  const std::string out = text.Take();
  CHECK(out ==
        "# HELP odd_total a \\\\ backslash\\nand a \"quote\"\n"
        "# TYPE odd_total counter\n"
        "odd_total{queue=\"a\\\"b\\\\c\\nd\",kind=\"plain\"} 5\n"
        "# HELP level can go below zero\n"
        "# TYPE level gauge\n"
        "level -3\n");
  ParseExposition(out);
}
