#include "incident_report.hpp"

#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "display_text.hpp"
#include "sqlite_state_store.hpp"
#include "state_store.hpp"
#include "usage_error.hpp"

namespace workflowd {
namespace {

namespace po = boost::program_options;

constexpr std::array kIncidentStatuses = {IncidentStatus::kPending, IncidentStatus::kActive,
                                          IncidentStatus::kComplete, IncidentStatus::kCancelled,
                                          IncidentStatus::kError};
// How much of a message's body and comment a table shows; --json has them whole.
constexpr std::size_t kExcerptChars = 60;

// ---- Text made safe for DOT ------------------------------------------------------------------

// The inside of a double-quoted DOT string: a newline is a line break of the label, other
// control characters are spaces, and quotes and backslashes are escaped (a backslash would
// otherwise start an escape of Graphviz's own, such as \N for the node's name).
std::string DotText(std::string_view text) {
  const std::string clean = CleanText(text, [](std::string_view character) {
    return character == "\n" ? character : std::string_view(" ");
  });
  std::string escaped;
  escaped.reserve(clean.size());
  for (const char c : clean) {
    if (c == '\n') {
      escaped += "\\n";
    } else {
      if (c == '\\' || c == '"') escaped += '\\';
      escaped += c;
    }
  }
  return escaped;
}

// ---- Times ------------------------------------------------------------------------------------

// How long a handler ran on the message, when it started and finished.
std::optional<std::int64_t> ProcessingMs(const MessageRecord& message) {
  if (!message.processing_at || !message.finished_at) return std::nullopt;
  return std::max<std::int64_t>(0, *message.finished_at - *message.processing_at);
}

std::string FormatDuration(std::int64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms) / 1000.0);
  return text;
}

// ---- Arguments and the store ------------------------------------------------------------------

std::string Target(const po::variables_map& arguments, const char* what) {
  if (arguments.count("target") == 0) throw UsageError(std::string(what) + " is required");
  return arguments["target"].as<std::string>();
}

// A reader never creates a store: a missing file is most likely a config pointing elsewhere.
std::unique_ptr<StateStore> OpenExistingStore(const Settings& settings) {
  if (!std::filesystem::exists(settings.state.path)) {
    throw std::runtime_error("no state store at " + settings.state.path.string());
  }
  return OpenSqliteStateStore(settings.state.path);
}

Incident FindExistingIncident(StateStore& store, const std::string& id) {
  std::optional<Incident> incident = store.FindIncident(id);
  if (!incident) throw std::runtime_error("no incident " + id);
  return std::move(*incident);
}

// ---- list -------------------------------------------------------------------------------------

IncidentStatus ParseStatusArgument(const std::string& text) {
  std::string upper = text;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  if (std::optional<IncidentStatus> status = ParseIncidentStatus(upper)) return *status;
  std::string allowed;
  for (IncidentStatus status : kIncidentStatuses) {
    allowed += (allowed.empty() ? "" : ", ") + std::string(ToString(status));
  }
  throw UsageError("--status: unknown status '" + text + "' (one of " + allowed + ")");
}

IncidentFilter ParseListFilter(const po::variables_map& arguments) {
  IncidentFilter filter;
  if (arguments.count("status")) filter.status = ParseStatusArgument(arguments["status"].as<std::string>());
  if (arguments.count("kind")) filter.kind = arguments["kind"].as<std::string>();
  const int limit = arguments["limit"].as<int>();
  if (limit < 1) throw UsageError("--limit must be at least 1");
  filter.limit = static_cast<std::size_t>(limit);
  return filter;
}

void PrintIncidents(const std::vector<Incident>& incidents, std::ostream& out) {
  if (incidents.empty()) {
    out << "no incidents\n";
    return;
  }
  Table table({"ID", "KIND", "NAME", "STATUS", "CREATED", "UPDATED"});
  for (const Incident& incident : incidents) {
    table.Add({incident.id, incident.kind, incident.name, std::string(ToString(incident.status)),
               FormatUtcSeconds(incident.created_at), FormatUtcSeconds(incident.updated_at)});
  }
  table.Print(out);
}

// ---- show -------------------------------------------------------------------------------------

void PrintIncident(const Incident& incident, std::ostream& out) {
  const std::pair<const char*, std::string> fields[] = {
      {"incident", incident.id},
      {"kind", incident.kind},
      {"name", incident.name},
      {"status", std::string(ToString(incident.status))},
      {"comment", incident.comment},
      {"created", FormatUtcSeconds(incident.created_at)},
      {"updated", FormatUtcSeconds(incident.updated_at)},
  };
  for (const auto& [label, value] : fields) out << std::left << std::setw(10) << label << CellText(value) << "\n";
}

std::string Arrow(const std::string& from, const std::string& to) {
  return (from.empty() ? "-" : from) + " → " + (to.empty() ? "-" : to);
}

void PrintMessageLog(const std::vector<MessageRecord>& log, std::ostream& out) {
  if (log.empty()) {
    out << "no messages\n";
    return;
  }
  Table table({"SENT", "STATUS", "ORIGINATOR → DESTINATION", "TAGS", "MS", "CONSUMER", "COMMENT", "BODY"});
  for (const MessageRecord& message : log) {
    const std::optional<std::int64_t> ms = ProcessingMs(message);
    table.Add({message.sent_at ? FormatUtcMilliseconds(*message.sent_at) : "",
               std::string(ToString(message.status)), Arrow(message.originator, message.destination),
               message.src_tag.empty() && message.dest_tag.empty() ? "" : Arrow(message.src_tag, message.dest_tag),
               ms ? std::to_string(*ms) : "", message.consumer, Excerpt(message.comment, kExcerptChars),
               Excerpt(message.body_prefix, kExcerptChars)});
  }
  table.Print(out);
}

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void WriteField(JsonWriter& writer, std::string_view key, std::string_view value) {
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  const std::string text = JsonText(value);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

void WriteField(JsonWriter& writer, std::string_view key, std::optional<std::int64_t> value) {
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  if (value) {
    writer.Int64(*value);
  } else {
    writer.Null();
  }
}

void WriteIncident(JsonWriter& writer, const Incident& incident) {
  writer.StartObject();
  WriteField(writer, "id", incident.id);
  WriteField(writer, "kind", incident.kind);
  WriteField(writer, "name", incident.name);
  WriteField(writer, "status", ToString(incident.status));
  WriteField(writer, "comment", incident.comment);
  WriteField(writer, "created_at", incident.created_at);
  WriteField(writer, "updated_at", incident.updated_at);
  writer.EndObject();
}

void WriteMessage(JsonWriter& writer, const MessageRecord& message) {
  writer.StartObject();
  WriteField(writer, "message_id", message.message_id);
  WriteField(writer, "incident_id", message.incident_id);
  WriteField(writer, "status", ToString(message.status));
  WriteField(writer, "originator", message.originator);
  WriteField(writer, "destination", message.destination);
  WriteField(writer, "src_tag", message.src_tag);
  WriteField(writer, "dest_tag", message.dest_tag);
  WriteField(writer, "body_prefix", message.body_prefix);
  WriteField(writer, "consumer", message.consumer);
  WriteField(writer, "comment", message.comment);
  WriteField(writer, "sent_at", message.sent_at);
  WriteField(writer, "processing_at", message.processing_at);
  WriteField(writer, "finished_at", message.finished_at);
  writer.EndObject();
}

// {"incident": {...}, "messages": [...]}, times in milliseconds since the Unix epoch (UTC).
void PrintIncidentJson(const Incident& incident, const std::vector<MessageRecord>& log, std::ostream& out) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.SetIndent(' ', 2);
  writer.StartObject();
  writer.Key("incident");
  WriteIncident(writer, incident);
  writer.Key("messages");
  writer.StartArray();
  for (const MessageRecord& message : log) WriteMessage(writer, message);
  writer.EndArray();
  writer.EndObject();
  out << buffer.GetString() << "\n";
}

// ---- graph: stages from the message log -------------------------------------------------------

// How bad a status is for the stage that has it: a stage shows its worst message's.
int Severity(MessageStatus status) {
  switch (status) {
    case MessageStatus::kComplete: return 0;
    case MessageStatus::kSent: return 1;
    case MessageStatus::kProcessing: return 2;
    case MessageStatus::kNotProcessed: return 3;
    case MessageStatus::kError: return 4;
  }
  return 4;
}

const char* FillColour(std::optional<MessageStatus> worst) {
  if (!worst) return "white";  // only sends: a producer such as workflowctl
  switch (*worst) {
    case MessageStatus::kComplete: return "palegreen";
    case MessageStatus::kSent:
    case MessageStatus::kProcessing: return "yellow";
    case MessageStatus::kError: return "red";
    case MessageStatus::kNotProcessed: return "lightgrey";
  }
  return "white";
}

std::string WithoutSuffix(const std::string& name, std::string_view suffix) {
  if (name.size() > suffix.size() && name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
  return name;
}

// As VESTEC's graph.py named them: a message's tags when it has them, else the sending
// handler and the destination queue, without their _handler and _queue suffixes, so that
// A_handler's sends leave the node of the messages to A_queue.
std::string SourceStage(const MessageRecord& message) {
  if (!message.src_tag.empty()) return message.src_tag;
  return message.originator.empty() ? "(unknown)" : WithoutSuffix(message.originator, "_handler");
}

std::string DestinationStage(const MessageRecord& message) {
  if (!message.dest_tag.empty()) return message.dest_tag;
  return WithoutSuffix(message.destination, "_queue");
}

struct Stage {
  std::string name;
  std::optional<MessageStatus> worst;  // of the messages delivered to it; none for a producer
  std::int64_t processing_ms = 0;
};

// Stages in the order they first appear, and how many messages went from one to another.
class StageGraph {
 public:
  explicit StageGraph(const std::vector<MessageRecord>& log) {
    for (const MessageRecord& message : log) Add(message);
  }

  const std::vector<Stage>& stages() const { return stages_; }
  const std::map<std::pair<std::size_t, std::size_t>, std::size_t>& edges() const { return edges_; }

 private:
  void Add(const MessageRecord& message) {
    const std::size_t from = IndexOf(SourceStage(message));
    const std::size_t to = IndexOf(DestinationStage(message));
    Stage& stage = stages_[to];
    if (!stage.worst || Severity(message.status) > Severity(*stage.worst)) stage.worst = message.status;
    stage.processing_ms += ProcessingMs(message).value_or(0);
    ++edges_[{from, to}];
  }

  std::size_t IndexOf(const std::string& name) {
    auto [position, added] = index_.try_emplace(name, stages_.size());
    if (added) stages_.emplace_back().name = name;
    return position->second;
  }

  std::vector<Stage> stages_;
  std::map<std::string, std::size_t> index_;
  std::map<std::pair<std::size_t, std::size_t>, std::size_t> edges_;
};

// Node ids are n0, n1, ...: only labels carry names from the store.
std::string Dot(const Incident& incident, const StageGraph& graph) {
  std::ostringstream dot;
  dot << "digraph incident {\n"
      << "  label=\"" << DotText(incident.name + " (" + std::string(ToString(incident.status)) + ")") << "\";\n"
      << "  labelloc=t;\n"
      << "  node [style=filled];\n";
  for (std::size_t i = 0; i < graph.stages().size(); ++i) {
    const Stage& stage = graph.stages()[i];
    dot << "  n" << i << " [label=\"" << DotText(stage.name);
    if (stage.worst) dot << "\\n" << FormatDuration(stage.processing_ms);
    dot << "\", fillcolor=" << FillColour(stage.worst) << "];\n";
  }
  for (const auto& [edge, messages] : graph.edges()) {
    dot << "  n" << edge.first << " -> n" << edge.second << " [label=\"" << messages << "\"];\n";
  }
  dot << "}\n";
  return dot.str();
}

// ---- graph: output ----------------------------------------------------------------------------

struct GraphRequest {
  std::string incident_id;
  std::string format;  // dot, svg or png
  std::string output;  // empty: stdout (dot only)
};

GraphRequest ParseGraphRequest(const po::variables_map& arguments) {
  GraphRequest request{.incident_id = Target(arguments, "INCIDENT"),
                       .format = arguments["format"].as<std::string>(),
                       .output = arguments.count("output") ? arguments["output"].as<std::string>() : ""};
  if (request.format != "dot" && request.format != "svg" && request.format != "png") {
    throw UsageError("--format: unknown format '" + request.format + "' (one of dot, svg, png)");
  }
  if (request.format != "dot" && request.output.empty()) {
    throw UsageError("--format " + request.format + " needs -o FILE");
  }
  return request;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) throw std::runtime_error("cannot write " + path);
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { Close(); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Starts Graphviz's dot, found on PATH, reading the graph from input and writing the output file.
pid_t SpawnDot(const std::string& format, const std::string& output, int input) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO);
  std::string program = "dot";
  std::string type = "-T" + format;
  std::string out = "-o" + output;  // one argument: a file name starting with '-' stays a name
  char* argv[] = {program.data(), type.data(), out.data(), nullptr};
  pid_t pid = 0;
  const int error = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error == ENOENT) {
    throw std::runtime_error("Graphviz's dot is not on PATH: install the graphviz package to draw " + format +
                             ", or use --format dot");
  }
  if (error != 0) throw std::system_error(error, std::generic_category(), "cannot run Graphviz's dot");
  return pid;
}

// Writes all of text to a socket; stops early, without SIGPIPE, if the reader has gone (its
// exit status then says why).
void SendAll(int socket, std::string_view text) {
  while (!text.empty()) {
    const ssize_t sent = ::send(socket, text.data(), text.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && errno == EPIPE) return;
    if (sent < 0) throw std::system_error(errno, std::generic_category(), "writing to Graphviz's dot");
    text.remove_prefix(static_cast<std::size_t>(sent));
  }
}

void WaitForDot(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waiting for Graphviz's dot");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (WIFEXITED(status)) {
    throw std::runtime_error("Graphviz's dot failed with exit status " + std::to_string(WEXITSTATUS(status)));
  }
  throw std::runtime_error("Graphviz's dot was killed by signal " + std::to_string(WTERMSIG(status)));
}

// The graph goes to dot through a socket rather than a pipe, so that a dot that dies early
// makes send fail with EPIPE (MSG_NOSIGNAL) instead of killing workflowctl with SIGPIPE.
void RenderWithDot(const std::string& dot, const GraphRequest& request) {
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  FileDescriptor ours(sockets[0]);
  FileDescriptor theirs(sockets[1]);
  const pid_t pid = SpawnDot(request.format, request.output, theirs.get());
  theirs.Close();
  SendAll(ours.get(), dot);
  ours.Close();  // end of input
  WaitForDot(pid);
}

}  // namespace

void AddListOptions(po::options_description& options) {
  options.add_options()
      ("status", po::value<std::string>(), "only incidents in STATUS: PENDING, ACTIVE, COMPLETE, CANCELLED or ERROR")
      ("kind", po::value<std::string>(), "only incidents of this workflow kind")
      ("limit", po::value<int>()->default_value(static_cast<int>(IncidentFilter{}.limit)), "at most N incidents");
}

int ListIncidents(const Settings& settings, const po::variables_map& arguments) {
  const IncidentFilter filter = ParseListFilter(arguments);
  PrintIncidents(OpenExistingStore(settings)->ListIncidents(filter), std::cout);
  return 0;
}

void AddShowOptions(po::options_description& options) {
  options.add_options()("json",
                        "print the incident and its message log as one JSON object (times in ms since the epoch)");
}

int ShowIncident(const Settings& settings, const po::variables_map& arguments) {
  const std::string id = Target(arguments, "INCIDENT");
  auto store = OpenExistingStore(settings);
  const Incident incident = FindExistingIncident(*store, id);
  const std::vector<MessageRecord> log = store->MessageLog(id);
  if (arguments.count("json")) {
    PrintIncidentJson(incident, log, std::cout);
  } else {
    PrintIncident(incident, std::cout);
    std::cout << "\n";
    PrintMessageLog(log, std::cout);
  }
  return 0;
}

void AddGraphOptions(po::options_description& options) {
  options.add_options()
      ("format", po::value<std::string>()->default_value("dot"), "dot, svg or png (svg and png need Graphviz)")
      ("output,o", po::value<std::string>(), "write to FILE (default for dot: stdout)");
}

int GraphIncident(const Settings& settings, const po::variables_map& arguments) {
  const GraphRequest request = ParseGraphRequest(arguments);
  auto store = OpenExistingStore(settings);
  const Incident incident = FindExistingIncident(*store, request.incident_id);
  const std::string dot = Dot(incident, StageGraph(store->MessageLog(incident.id)));
  if (request.format != "dot") {
    RenderWithDot(dot, request);
  } else if (!request.output.empty()) {
    WriteFile(request.output, dot);
  } else {
    std::cout << dot;
  }
  return 0;
}

}  // namespace workflowd
