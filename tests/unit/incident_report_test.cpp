#include "incident_report.hpp"

#include <rapidjson/document.h>
#include <stdlib.h>

#include <boost/program_options.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "settings.hpp"
#include "sqlite_state_store.hpp"
#include "usage_error.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
namespace po = boost::program_options;
using Catch::Contains;
using Catch::EndsWith;
using Catch::StartsWith;
using workflowd::Incident;
using workflowd::IncidentStatus;
using workflowd::MessageEvent;
using workflowd::MessageStatus;
using workflowd::Settings;
using workflowd::StateStore;
using workflowd::UsageError;

namespace {

class TempDir : public workflowd::testing::TempDir {
 public:
  TempDir() : workflowd::testing::TempDir("workflowd-report-test") {}
};

// What std::cout receives while it lives.
class CapturedStdout {
 public:
  CapturedStdout() : previous_(std::cout.rdbuf(captured_.rdbuf())) {}
  CapturedStdout(const CapturedStdout&) = delete;
  CapturedStdout& operator=(const CapturedStdout&) = delete;
  ~CapturedStdout() { std::cout.rdbuf(previous_); }
  std::string text() const { return captured_.str(); }

 private:
  std::ostringstream captured_;
  std::streambuf* previous_;
};

// Sets an environment variable for its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The command line after the command's name, parsed as workflowctl does.
po::variables_map Arguments(void (*add_options)(po::options_description&), std::vector<std::string> line) {
  po::options_description options;
  add_options(options);
  options.add_options()("target", po::value<std::string>());
  po::positional_options_description target;
  target.add("target", 1);
  po::variables_map arguments;
  po::store(po::command_line_parser(line).options(options).positional(target).run(), arguments);
  po::notify(arguments);
  return arguments;
}

using Command = int (*)(const Settings&, const po::variables_map&);

std::string Run(Command command, void (*add_options)(po::options_description&), const Settings& settings,
                std::vector<std::string> line) {
  const po::variables_map arguments = Arguments(add_options, std::move(line));
  CapturedStdout out;
  const int exit_code = command(settings, arguments);  // a throw goes to the test's CHECK_THROWS
  REQUIRE(exit_code == 0);
  return out.text();
}

std::string List(const Settings& settings, std::vector<std::string> line = {}) {
  return Run(workflowd::ListIncidents, workflowd::AddListOptions, settings, std::move(line));
}
std::string Show(const Settings& settings, std::vector<std::string> line) {
  return Run(workflowd::ShowIncident, workflowd::AddShowOptions, settings, std::move(line));
}
std::string Graph(const Settings& settings, std::vector<std::string> line) {
  return Run(workflowd::GraphIncident, workflowd::AddGraphOptions, settings, std::move(line));
}

MessageEvent Event(const std::string& id, const std::string& incident, MessageStatus status, std::int64_t at) {
  MessageEvent event;
  event.message_id = id;
  event.incident_id = incident;
  event.status = status;
  event.at = at;
  return event;
}

// A sent message and what became of it: PROCESSING at sent + 10, then `final` at sent + 10 + ms.
std::vector<MessageEvent> Message(const std::string& id, const std::string& incident, const std::string& originator,
                                  const std::string& queue, std::int64_t sent, std::optional<MessageStatus> final,
                                  std::int64_t ms = 0) {
  MessageEvent sent_event = Event(id, incident, MessageStatus::kSent, sent);
  sent_event.originator = originator;
  sent_event.destination = queue;
  sent_event.body_prefix = R"({"IncidentID": ")" + incident + R"(", "numbers": [3, 1, 2]})";
  std::vector<MessageEvent> events = {sent_event};
  if (!final) return events;
  MessageEvent processing = Event(id, incident, MessageStatus::kProcessing, sent + 10);
  processing.consumer = "host-a:4242";
  events.push_back(processing);
  if (*final == MessageStatus::kProcessing) return events;
  MessageEvent finished = Event(id, incident, *final, sent + 10 + ms);
  if (*final == MessageStatus::kError) finished.comment = "handler threw: division by zero";
  events.push_back(finished);
  return events;
}

// A store with three incidents, the newest one with a message log:
//   workflowctl → A_queue (COMPLETE, 40 ms), A_handler → B_queue ×2 (COMPLETE 5 ms, ERROR 7 ms),
//   B_handler → C_queue (still PROCESSING).
struct Fixture {
  TempDir dir;
  Settings settings;
  Incident first, second, third;

  Fixture() {
    settings.state.path = dir.path() / "state.db";
    auto store = workflowd::OpenSqliteStateStore(settings.state.path);
    first = store->CreateIncident("quicksort", "sort one");
    second = store->CreateIncident("simple", "simple one", "by hand");
    third = store->CreateIncident("simple", "simple two");
    store->TransitionIncident(first.id, IncidentStatus::kActive);
    store->TransitionIncident(first.id, IncidentStatus::kComplete);
    store->TransitionIncident(third.id, IncidentStatus::kActive);
    std::vector<MessageEvent> events;
    for (auto part : {Message("m1", third.id, "workflowctl", "A_queue", 1'000, MessageStatus::kComplete, 40),
                      Message("m2", third.id, "A_handler", "B_queue", 2'000, MessageStatus::kComplete, 5),
                      Message("m3", third.id, "A_handler", "B_queue", 3'000, MessageStatus::kError, 7),
                      Message("m4", third.id, "B_handler", "C_queue", 4'000, MessageStatus::kProcessing)}) {
      events.insert(events.end(), part.begin(), part.end());
    }
    store->RecordMessages(events);
  }
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

}  // namespace

TEST_CASE("list prints incidents newest first in aligned columns") {
  Fixture fixture;
  const std::vector<std::string> lines = Lines(List(fixture.settings));
  REQUIRE(lines.size() == 4);
  CHECK(std::regex_match(lines[0], std::regex("ID +KIND +NAME +STATUS +CREATED +UPDATED")));
  CHECK_THAT(lines[1], StartsWith(fixture.third.id) && Contains("simple two") && Contains("ACTIVE"));
  CHECK_THAT(lines[2], StartsWith(fixture.second.id) && Contains("PENDING"));
  CHECK_THAT(lines[3], StartsWith(fixture.first.id) && Contains("quicksort") && Contains("COMPLETE"));
  // Columns line up: STATUS starts at the same offset in every row.
  const std::size_t status_column = lines[0].find("STATUS");
  CHECK(lines[1].substr(status_column, 6) == "ACTIVE");
  CHECK(lines[3].substr(status_column, 8) == "COMPLETE");
  const std::string second = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)";
  CHECK(std::regex_search(lines[1], std::regex(second + "  " + second + "$")));
}

TEST_CASE("list filters by status and kind, and limits") {
  Fixture fixture;
  const std::string complete = List(fixture.settings, {"--status", "complete"});
  CHECK_THAT(complete, Contains(fixture.first.id));
  CHECK(Lines(complete).size() == 2);

  const std::string simple = List(fixture.settings, {"--kind", "simple"});
  CHECK_THAT(simple, Contains(fixture.second.id) && Contains(fixture.third.id));
  CHECK_THAT(simple, !Contains(fixture.first.id));

  const std::string newest = List(fixture.settings, {"--limit", "1"});
  CHECK(Lines(newest).size() == 2);
  CHECK_THAT(newest, Contains(fixture.third.id));

  CHECK(List(fixture.settings, {"--status", "CANCELLED"}) == "no incidents\n");
}

TEST_CASE("list refuses an unknown status, naming the allowed ones, and a limit below 1") {
  Fixture fixture;
  CHECK_THROWS_MATCHES(List(fixture.settings, {"--status", "done"}), UsageError,
                       Catch::Message("--status: unknown status 'done' (one of PENDING, ACTIVE, COMPLETE, "
                                      "CANCELLED, ERROR)"));
  CHECK_THROWS_AS(List(fixture.settings, {"--limit", "0"}), UsageError);
}

TEST_CASE("list says so when there are no incidents") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "state.db";
  workflowd::OpenSqliteStateStore(settings.state.path);
  CHECK(List(settings) == "no incidents\n");
}

TEST_CASE("show prints the incident and its message log") {
  Fixture fixture;
  const std::string text = Show(fixture.settings, {fixture.third.id});
  const std::vector<std::string> lines = Lines(text);
  REQUIRE(lines.size() == 7 + 1 + 1 + 4);
  CHECK(lines[0] == "incident  " + fixture.third.id);
  CHECK(lines[1] == "kind      simple");
  CHECK(lines[2] == "name      simple two");
  CHECK(lines[3] == "status    ACTIVE");
  CHECK(lines[4] == "comment   ");
  CHECK(std::regex_match(lines[5], std::regex(R"(created   \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK(lines[7].empty());
  CHECK(std::regex_match(lines[8],
                         std::regex("SENT +STATUS +ORIGINATOR → DESTINATION +TAGS +MS +CONSUMER +COMMENT +BODY")));
  CHECK(std::regex_match(lines[9], std::regex(R"(1970-01-01T00:00:01\.000Z +COMPLETE +workflowctl → A_queue +- +40 +)"
                                              R"(host-a:4242 +- +\{"IncidentID": ".*…)")));
  CHECK(std::regex_search(lines[11], std::regex(R"(ERROR +A_handler → B_queue +- +7 +host-a:4242 +)"
                                                R"(handler threw: division by zero +\{)")));
  CHECK(std::regex_search(lines[12], std::regex(R"(PROCESSING +B_handler → C_queue +- +- +host-a:4242 +- +\{)")));
  // The body prefix is cut to 60 characters, the last one an ellipsis.
  const std::string body = lines[9].substr(lines[9].find("{\"IncidentID\""));
  CHECK(body.size() == 59 + std::string("…").size());
}

TEST_CASE("show keeps hostile text off the terminal") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "state.db";
  const std::string id = [&] {
    auto store = workflowd::OpenSqliteStateStore(settings.state.path);
    Incident incident = store->CreateIncident("k", "evil\x1b]0;title\x07name");
    std::vector<MessageEvent> events = Message("m", incident.id, "a", "line\none\xff", 1'000, std::nullopt);
    store->RecordMessages(events);
    return incident.id;
  }();
  const std::string text = Show(settings, {id});
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find('\x07') == std::string::npos);
  CHECK_THAT(text, Contains("evil ]0;title name") && Contains("a → line one\xEF\xBF\xBD"));
}

TEST_CASE("show --json prints every field as one JSON object") {
  Fixture fixture;
  const std::string text = Show(fixture.settings, {fixture.third.id, "--json"});
  rapidjson::Document json;
  json.Parse(text.c_str());
  REQUIRE_FALSE(json.HasParseError());
  const rapidjson::Value& incident = json["incident"];
  CHECK(incident["id"].GetString() == fixture.third.id);
  CHECK(incident["kind"].GetString() == std::string("simple"));
  CHECK(incident["name"].GetString() == std::string("simple two"));
  CHECK(incident["status"].GetString() == std::string("ACTIVE"));
  CHECK(incident["comment"].GetString() == std::string(""));
  CHECK(incident["created_at"].GetInt64() == fixture.third.created_at);
  CHECK(incident["updated_at"].GetInt64() >= fixture.third.created_at);

  const rapidjson::Value& messages = json["messages"];
  REQUIRE(messages.Size() == 4);
  const rapidjson::Value& error = messages[2];
  CHECK(error["message_id"].GetString() == std::string("m3"));
  CHECK(error["incident_id"].GetString() == fixture.third.id);
  CHECK(error["status"].GetString() == std::string("ERROR"));
  CHECK(error["originator"].GetString() == std::string("A_handler"));
  CHECK(error["destination"].GetString() == std::string("B_queue"));
  CHECK(error["src_tag"].GetString() == std::string(""));
  CHECK(error["dest_tag"].GetString() == std::string(""));
  CHECK_THAT(error["body_prefix"].GetString(), EndsWith(R"("numbers": [3, 1, 2]})"));
  CHECK(error["consumer"].GetString() == std::string("host-a:4242"));
  CHECK(error["comment"].GetString() == std::string("handler threw: division by zero"));
  CHECK(error["sent_at"].GetInt64() == 3'000);
  CHECK(error["processing_at"].GetInt64() == 3'010);
  CHECK(error["finished_at"].GetInt64() == 3'017);
  CHECK(messages[3]["finished_at"].IsNull());
}

TEST_CASE("show --json writes invalid UTF-8 from the store as U+FFFD") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "state.db";
  const std::string id = [&] {
    auto store = workflowd::OpenSqliteStateStore(settings.state.path);
    Incident incident = store->CreateIncident("k", "n");
    // A body prefix cut inside a two-byte character.
    std::vector<MessageEvent> events = Message("m", incident.id, "a", "q", 1'000, std::nullopt);
    events[0].body_prefix = "caf\xC3";
    store->RecordMessages(events);
    return incident.id;
  }();
  rapidjson::Document json;
  json.Parse<rapidjson::kParseValidateEncodingFlag>(Show(settings, {id, "--json"}).c_str());
  REQUIRE_FALSE(json.HasParseError());
  CHECK(json["messages"][0]["body_prefix"].GetString() == std::string("caf\xEF\xBF\xBD"));
}

TEST_CASE("graph draws stages, edges with message counts, colours and processing times") {
  Fixture fixture;
  const std::string dot = Graph(fixture.settings, {fixture.third.id});
  CHECK_THAT(dot, StartsWith("digraph incident {\n"));
  CHECK_THAT(dot, Contains("label=\"simple two (ACTIVE)\";"));
  CHECK_THAT(dot, Contains("n0 [label=\"workflowctl\", fillcolor=white];"));
  CHECK_THAT(dot, Contains("n1 [label=\"A\\n40 ms\", fillcolor=palegreen];"));
  CHECK_THAT(dot, Contains("n2 [label=\"B\\n12 ms\", fillcolor=red];"));  // ERROR beats COMPLETE
  CHECK_THAT(dot, Contains("n3 [label=\"C\\n0 ms\", fillcolor=yellow];"));
  CHECK_THAT(dot, Contains("n0 -> n1 [label=\"1\"];"));
  CHECK_THAT(dot, Contains("n1 -> n2 [label=\"2\"];"));
  CHECK_THAT(dot, Contains("n2 -> n3 [label=\"1\"];"));
  CHECK(dot.ends_with("}\n"));
}

TEST_CASE("graph names stages by tags when messages have them, and greys NOT_PROCESSED") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "state.db";
  const std::string id = [&] {
    auto store = workflowd::OpenSqliteStateStore(settings.state.path);
    Incident incident = store->CreateIncident("quicksort", "q");
    std::vector<MessageEvent> events = Message("m", incident.id, "quicksort_split", "quicksort_merge", 1'000,
                                               MessageStatus::kNotProcessed);
    for (MessageEvent& event : events) {
      event.src_tag = "split";
      event.dest_tag = "merge";
    }
    store->RecordMessages(events);
    return incident.id;
  }();
  const std::string dot = Graph(settings, {id});
  CHECK_THAT(dot, Contains("n0 [label=\"split\", fillcolor=white];"));
  CHECK_THAT(dot, Contains("n1 [label=\"merge\\n0 ms\", fillcolor=lightgrey];"));
  CHECK_THAT(dot, !Contains("quicksort_"));
}

TEST_CASE("graph escapes hostile names in DOT labels") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "state.db";
  const std::string id = [&] {
    auto store = workflowd::OpenSqliteStateStore(settings.state.path);
    Incident incident = store->CreateIncident("k", "say \"hi\"");
    store->RecordMessages(Message("m", incident.id, "a\\", "evil\"];\nx -> y [label=\"\\N\r", 1'000, std::nullopt));
    return incident.id;
  }();
  const std::string dot = Graph(settings, {id});
  CHECK_THAT(dot, Contains(R"x(label="say \"hi\" (PENDING)";)x"));
  CHECK_THAT(dot, Contains(R"(n0 [label="a\\", fillcolor=white];)"));
  CHECK_THAT(dot, Contains(R"(n1 [label="evil\"];\nx -> y [label=\"\\N \n0 ms", fillcolor=yellow];)"));
  // Every line is one statement: nothing from the store started a line of its own.
  for (const std::string& line : Lines(dot)) {
    CHECK(std::regex_match(line, std::regex(R"(digraph incident \{|  (label=|labelloc=|node |n\d+ ).*;|\})")));
  }
}

TEST_CASE("graph writes DOT to a file with -o") {
  Fixture fixture;
  const fs::path file = fixture.dir.path() / "graph.dot";
  CHECK(Graph(fixture.settings, {fixture.third.id, "-o", file.string()}).empty());
  CHECK_THAT(ReadFile(file), StartsWith("digraph incident {"));
}

TEST_CASE("graph --format svg runs Graphviz's dot") {
  Fixture fixture;
  const fs::path file = fixture.dir.path() / "graph.svg";
  CHECK(Graph(fixture.settings, {fixture.third.id, "--format", "svg", "-o", file.string()}).empty());
  const std::string svg = ReadFile(file);
  CHECK((svg.starts_with("<?xml") || svg.starts_with("<svg")));
  CHECK_THAT(svg, Contains("simple two (ACTIVE)"));
}

TEST_CASE("graph --format png says how to get Graphviz when dot is not on PATH") {
  Fixture fixture;
  TempDir empty;
  ScopedEnv path("PATH", empty.path().string());
  const fs::path file = fixture.dir.path() / "graph.png";
  CHECK_THROWS_MATCHES(Graph(fixture.settings, {fixture.third.id, "--format", "png", "-o", file.string()}),
                       std::runtime_error,
                       Catch::Message("Graphviz's dot is not on PATH: install the graphviz package to draw png, "
                                      "or use --format dot"));
  CHECK_FALSE(fs::exists(file));
}

TEST_CASE("graph refuses an unknown format, and svg or png without -o") {
  Fixture fixture;
  CHECK_THROWS_AS(Graph(fixture.settings, {fixture.third.id, "--format", "pdf"}), UsageError);
  CHECK_THROWS_MATCHES(Graph(fixture.settings, {fixture.third.id, "--format", "svg"}), UsageError,
                       Catch::Message("--format svg needs -o FILE"));
}

TEST_CASE("show and graph name an unknown incident") {
  Fixture fixture;
  CHECK_THROWS_MATCHES(Show(fixture.settings, {"no-such-id"}), std::runtime_error,
                       Catch::Message("no incident no-such-id"));
  CHECK_THROWS_MATCHES(Graph(fixture.settings, {"no-such-id"}), std::runtime_error,
                       Catch::Message("no incident no-such-id"));
  CHECK_THROWS_MATCHES(Show(fixture.settings, {}), UsageError, Catch::Message("INCIDENT is required"));
}

TEST_CASE("a missing state store is reported, not created") {
  TempDir dir;
  Settings settings;
  settings.state.path = dir.path() / "nowhere" / "state.db";
  const std::string expected = "no state store at " + settings.state.path.string();
  CHECK_THROWS_MATCHES(List(settings), std::runtime_error, Catch::Message(expected));
  CHECK_THROWS_MATCHES(Show(settings, {"x"}), std::runtime_error, Catch::Message(expected));
  CHECK_THROWS_MATCHES(Graph(settings, {"x"}), std::runtime_error, Catch::Message(expected));
  CHECK_FALSE(fs::exists(dir.path() / "nowhere"));
}
