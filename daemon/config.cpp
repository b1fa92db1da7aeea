#include "config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>
#include <workflow/workflow.hpp>

namespace workflowd {
namespace {

template <class E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr EnumName<LogLevel> kLogLevels[] = {
    {"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug},     {"info", LogLevel::kInfo},
    {"warning", LogLevel::kWarning}, {"error", LogLevel::kError},
};

constexpr EnumName<MessageLogLevel> kMessageLogLevels[] = {
    {"all", MessageLogLevel::kAll},
    {"errors", MessageLogLevel::kErrors},
    {"off", MessageLogLevel::kOff},
};
constexpr EnumName<QueueType> kQueueTypes[] = {
    {"classic", QueueType::kClassic},
    {"quorum", QueueType::kQuorum},
};

template <class E, std::size_t N>
std::optional<E> Lookup(std::string_view text, const EnumName<E> (&table)[N]) {
  for (const auto& entry : table) {
    if (entry.name == text) return entry.value;
  }
  return std::nullopt;
}

template <class E, std::size_t N>
std::vector<std::string_view> NamesOf(const EnumName<E> (&table)[N]) {
  std::vector<std::string_view> names;
  for (const auto& entry : table) names.push_back(entry.name);
  return names;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](unsigned char x, unsigned char y) {
    return std::tolower(x) == std::tolower(y);
  });
}

// "<problem>; did you mean 'x'? (allowed: a, b, c)", the suggestion only when one is close.
std::string Unknown(std::string problem, std::string_view actual,
                    const std::vector<std::string_view>& allowed) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (std::string_view name : allowed) {
    const std::size_t distance = EqualsIgnoringCase(name, actual) ? 0 : EditDistance(name, actual);
    if (distance < best_distance) best = name, best_distance = distance;
  }
  if (!best.empty()) problem += "; did you mean '" + std::string(best) + "'?";
  problem += " (allowed: ";
  for (std::size_t i = 0; i < allowed.size(); ++i) {
    problem += (i == 0 ? "" : ", ") + std::string(allowed[i]);
  }
  return problem + ")";
}

std::optional<std::int64_t> ParseInteger(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// Reads a whole file; the error carries errno so that messages can quote strerror.
std::error_code ReadFile(const std::filesystem::path& path, std::string& out) {
  const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return {errno, std::generic_category()};
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) {
    out.append(buffer, n);
  }
  if (std::ferror(file.get())) return {errno, std::generic_category()};
  return {};
}

struct Source {
  std::string file;            // as the operator named it, for messages
  std::filesystem::path dir;   // where relative paths resolve
};

std::string Where(const Source& source, YAML::Mark mark) {
  if (mark.is_null()) return source.file;
  return source.file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// A YAML node with its file position and dotted path, so that every error can name both.
class Value {
 public:
  Value(const Source& source, YAML::Node node, std::string path, std::string key,
        YAML::Mark key_mark)
      : source_(&source),
        node_(std::move(node)),
        path_(std::move(path)),
        key_(std::move(key)),
        key_mark_(key_mark) {}

  // The last path segment: a queue name may contain dots.
  const std::string& key() const { return key_; }
  bool IsNull() const { return node_.IsNull(); }

  // At the value; a missing value has no position of its own, so its key's is used.
  [[noreturn]] void Fail(std::string_view problem) const { throw ConfigError(At(problem)); }
  [[noreturn]] void FailAtKey(std::string_view problem) const {
    throw ConfigError(Format(key_mark_, problem));
  }
  // The line of an error or a warning about the value: "<file>:<line>:<column>: <path>: <problem>".
  std::string At(std::string_view problem) const {
    return Format(IsNull() || node_.Mark().is_null() ? key_mark_ : node_.Mark(), problem);
  }

  std::string Describe() const {
    if (node_.IsScalar()) return "'" + node_.Scalar() + "'";
    if (node_.IsSequence()) return "a sequence";
    if (node_.IsMap()) return "a map";
    return "nothing";
  }

  const std::string& Scalar(std::string_view expected) const {
    if (IsNull()) Fail("a value is required; expected " + std::string(expected));
    if (!node_.IsScalar()) Fail("expected " + std::string(expected) + ", got " + Describe());
    return node_.Scalar();
  }

  // Plain (unquoted, untagged) scalars are the ones YAML would type as numbers or booleans.
  bool IsPlain() const { return node_.Tag() == "?"; }

  std::string String() const {
    const std::string& text = Scalar("a string");
    if (text.empty()) Fail("expected a non-empty string, got ''");
    return text;
  }

  std::int64_t Integer(std::int64_t min, std::int64_t max,
                       std::string_view what = "an integer") const {
    const std::string expected =
        std::string(what) + " from " + std::to_string(min) + " to " + std::to_string(max);
    const std::optional<std::int64_t> value = ParseInteger(Scalar(expected));
    if (!value || *value < min || *value > max) {
      Fail("expected " + expected + ", got " + Describe());
    }
    return *value;
  }

  std::filesystem::path Path() const {
    std::filesystem::path path = String();
    return path.is_absolute() ? path : (source_->dir / path).lexically_normal();
  }

  template <class E, std::size_t N>
  E Enum(const EnumName<E> (&table)[N]) const {
    const std::string& text = Scalar("a string");
    if (const std::optional<E> value = Lookup(text, table)) return *value;
    Fail(Unknown("unknown value '" + text + "'", text, NamesOf(table)));
  }

  std::string QueueName() const {
    std::string name = String();
    std::string reason;
    if (!workflow::IsValidQueueName(name, &reason)) Fail("invalid queue name: " + reason);
    return name;
  }

  // Calls visit for each entry of a map, refusing non-map values, odd keys and duplicates.
  void ForEach(const std::function<void(const Value&)>& visit) const {
    if (IsNull()) Fail("a value is required; expected a map (write {} for an empty one)");
    if (!node_.IsMap()) Fail("expected a map, got " + Describe());
    std::map<std::string, int> first_line;
    for (const auto& entry : node_) {
      const Value key(*source_, entry.first, path_, "", entry.first.Mark());
      if (!entry.first.IsScalar() || entry.first.Scalar().empty()) {
        key.Fail("expected a key name, got " + key.Describe());
      }
      const std::string& name = entry.first.Scalar();
      const Value child(*source_, entry.second, path_.empty() ? name : path_ + "." + name, name,
                        entry.first.Mark());
      if (const auto [it, fresh] = first_line.emplace(name, entry.first.Mark().line + 1); !fresh) {
        child.FailAtKey("duplicate key (first set on line " + std::to_string(it->second) + ")");
      }
      visit(child);
    }
  }

  struct Field {
    std::string_view key;
    std::function<void(const Value&)> read;
  };

  // A map with a fixed schema: each key must be one of fields.
  void Fields(std::initializer_list<Field> fields) const {
    ForEach([&](const Value& child) {
      const auto field = std::ranges::find(fields, std::string_view(child.key()), &Field::key);
      if (field == fields.end()) {
        std::vector<std::string_view> allowed;
        for (const Field& f : fields) allowed.push_back(f.key);
        child.FailAtKey(Unknown("unknown key", child.key(), allowed));
      }
      field->read(child);
    });
  }

 private:
  std::string Format(YAML::Mark mark, std::string_view problem) const {
    return Where(*source_, mark) + ": " + (path_.empty() ? "" : path_ + ": ") + std::string(problem);
  }

  const Source* source_;
  YAML::Node node_;
  std::string path_;
  std::string key_;
  YAML::Mark key_mark_;
};

// Binders from a schema field to a Settings member.
using Reader = std::function<void(const Value&)>;

Reader AsString(std::string& out) {
  return [&out](const Value& v) { out = v.String(); };
}
Reader AsPath(std::filesystem::path& out) {
  return [&out](const Value& v) { out = v.Path(); };
}
Reader AsQueueName(std::string& out) {
  return [&out](const Value& v) { out = v.QueueName(); };
}
template <class T>
Reader AsInteger(T& out, std::int64_t min, std::int64_t max) {
  return [&out, min, max](const Value& v) { out = static_cast<T>(v.Integer(min, max)); };
}
template <class Duration>
Reader AsSeconds(Duration& out, std::int64_t min, std::int64_t max) {
  return [&out, min, max](const Value& v) {
    out = std::chrono::seconds(v.Integer(min, max, "a number of seconds"));
  };
}
template <class E, std::size_t N>
Reader AsEnum(E& out, const EnumName<E> (&table)[N]) {
  return [&out, &table](const Value& v) { out = v.Enum(table); };
}

// A password is short: a bigger file is the wrong file, and reading it could take forever.
constexpr std::size_t kMaxPasswordFileBytes = 4096;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string_view FileType(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Reads the password from a small regular file; a directory, a device such as /dev/zero, a FIFO
// or a file over kMaxPasswordFileBytes is refused unread. A file its group or others may read
// still loads, with a warning.
std::string ReadPasswordFile(const Value& v, ConfigWarnings* warnings) {
  const std::filesystem::path path = v.Path();
  const std::string file = "the password file '" + path.string() + "'";
  const auto fail_errno = [&](int error) {
    v.Fail("cannot read " + file + ": " + std::generic_category().message(error));
  };
  // O_NONBLOCK: opening a FIFO must not wait for a writer. The checks below are made on the
  // open file, so what is read is what was checked.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fail_errno(errno);
  const FileDescriptor descriptor(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail_errno(errno);
  if (!S_ISREG(info.st_mode)) v.Fail(file + " is " + std::string(FileType(info.st_mode)) + ", not a regular file");
  const auto too_large = [&](const std::string& size) {
    v.Fail(file + " is " + size + "; a password file holds at most " + std::to_string(kMaxPasswordFileBytes) +
           " bytes");
  };
  if (static_cast<std::uintmax_t>(info.st_size) > kMaxPasswordFileBytes) {
    too_large(std::to_string(info.st_size) + " bytes");
  }
  const mode_t readers = info.st_mode & (S_IRGRP | S_IROTH);
  if (readers != 0 && warnings != nullptr) {
    const char* who = readers == (S_IRGRP | S_IROTH) ? "its group and others"
                      : readers == S_IRGRP           ? "its group"
                                                     : "others";
    warnings->push_back(v.At(file + " is readable by " + who + " (mode " + OctalMode(info.st_mode) +
                             "); it holds the broker password: make it readable by the daemon's user "
                             "only (chmod 0400)"));
  }
  // One byte more than allowed, to notice a file that grew since fstat.
  std::string password(kMaxPasswordFileBytes + 1, '\0');
  std::size_t size = 0;
  while (size < password.size()) {
    const ssize_t n = ::read(fd, password.data() + size, password.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(errno);
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  if (size > kMaxPasswordFileBytes) too_large("over " + std::to_string(kMaxPasswordFileBytes) + " bytes");
  password.resize(size);
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) v.Fail(file + " is empty");
  return password;
}

BrokerSettings ReadBroker(const Value& section, ConfigWarnings* warnings) {
  BrokerSettings broker;
  bool has_password = false;
  std::optional<Value> password_file;
  section.Fields({
      {"host", AsString(broker.host)},
      {"port", AsInteger(broker.port, 1, 65535)},
      {"vhost", AsString(broker.vhost)},
      {"user", AsString(broker.user)},
      {"password",
       [&](const Value& v) {
         broker.password = v.String();
         has_password = true;
       }},
      {"password_file", [&](const Value& v) { password_file = v; }},
      {"heartbeat", AsSeconds(broker.heartbeat, 0, 3600)},
      {"prefetch", AsInteger(broker.prefetch, 1, 65535)},
      {"connect_timeout", AsSeconds(broker.connect_timeout, 1, 300)},
  });
  if (password_file) {
    if (has_password) {
      password_file->FailAtKey("set either 'password' or 'password_file', not both");
    }
    broker.password = ReadPasswordFile(*password_file, warnings);
  }
  return broker;
}

QueueArgument ReadQueueArgument(const Value& v) {
  const std::string& text = v.Scalar("an integer, true, false or a string");
  if (v.IsPlain()) {
    if (const std::optional<std::int64_t> number = ParseInteger(text)) return *number;
    if (text == "true" || text == "false") return text == "true";
  }
  return text;
}

std::map<std::string, QueueSettings> ReadQueues(const Value& section) {
  std::map<std::string, QueueSettings> queues;
  section.ForEach([&](const Value& entry) {
    std::string reason;
    if (!workflow::IsValidQueueName(entry.key(), &reason)) {
      entry.FailAtKey("invalid queue name: " + reason);
    }
    QueueSettings& queue = queues[entry.key()];
    if (entry.IsNull()) return;  // `name:` alone means a durable classic queue
    entry.Fields({
        {"type", AsEnum(queue.type, kQueueTypes)},
        {"arguments",
         [&](const Value& arguments) {
           arguments.ForEach([&](const Value& argument) {
             const std::string& name = argument.key();
             if (!name.starts_with("x-")) {
               argument.FailAtKey(
                   "queue arguments start with 'x-' (x-delivery-limit, x-max-length, ...)");
             }
             if (name == "x-queue-type") argument.FailAtKey("set the queue type with 'type'");
             queue.arguments[name] = ReadQueueArgument(argument);
           });
         }},
    });
  });
  return queues;
}

StateSettings ReadState(const Value& section) {
  StateSettings state;
  section.Fields({
      {"path", AsPath(state.path)},
      {"message_log", AsEnum(state.message_log, kMessageLogLevels)},
      {"lease", AsSeconds(state.lease, 1, 86400)},
      {"cleanup_timeout", AsSeconds(state.cleanup_timeout, 0, 604800)},
  });
  return state;
}

// An IPv4 or IPv6 address literal: a host name would make the start depend on name lookup.
std::string ReadAddress(const Value& v) {
  std::string address = v.String();
  unsigned char bytes[sizeof(in6_addr)];
  if (inet_pton(AF_INET, address.c_str(), bytes) != 1 && inet_pton(AF_INET6, address.c_str(), bytes) != 1) {
    v.Fail("expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1, got " + v.Describe());
  }
  return address;
}

MetricsSettings ReadMetrics(const Value& section) {
  MetricsSettings metrics;
  section.Fields({
      {"address", [&](const Value& v) { metrics.address = ReadAddress(v); }},
      {"port", AsInteger(metrics.port, 0, 65535)},
      {"stall_timeout", AsSeconds(metrics.stall_timeout, 1, 86400)},
  });
  return metrics;
}

std::map<std::string, WorkflowKind> ReadWorkflows(const Value& section) {
  std::map<std::string, WorkflowKind> workflows;
  section.ForEach([&](const Value& entry) {
    WorkflowKind& kind = workflows[entry.key()];
    entry.Fields({
        {"init_queue", AsQueueName(kind.init_queue)},
        {"shutdown_queue", AsQueueName(kind.shutdown_queue)},
    });
    if (kind.init_queue.empty()) entry.FailAtKey("init_queue is required: the queue of the first stage");
  });
  return workflows;
}

}  // namespace

Settings ParseConfig(std::string_view yaml, const std::filesystem::path& file_name, ConfigWarnings* warnings) {
  const Source source{file_name.string(), std::filesystem::absolute(file_name).parent_path()};
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    throw ConfigError(Where(source, error.mark) + ": YAML syntax error: " + error.msg);
  }
  if (root.IsNull()) {
    throw ConfigError(source.file + ":1:1: the config file is empty; expected a map of settings");
  }
  const Value top(source, root, "", "", root.Mark());
  if (!root.IsMap()) top.Fail("expected a map of settings at the top level, got " + top.Describe());

  Settings settings;
  top.Fields({
      {"broker", [&](const Value& v) { settings.broker = ReadBroker(v, warnings); }},
      {"workers", AsInteger(settings.workers, 0, 1024)},
      {"plugins_dir", AsPath(settings.plugins_dir)},
      {"log_level", AsEnum(settings.log_level, kLogLevels)},
      {"max_message_bytes", AsInteger(settings.max_message_bytes, 1, std::int64_t{128} << 20)},
      {"dead_letter_queue", AsQueueName(settings.dead_letter_queue)},
      {"max_deliveries", AsInteger(settings.max_deliveries, 1, 1000)},
      {"shutdown_timeout", AsSeconds(settings.shutdown_timeout, 0, 3600)},
      {"queues", [&](const Value& v) { settings.queues = ReadQueues(v); }},
      {"state", [&](const Value& v) { settings.state = ReadState(v); }},
      {"workflows", [&](const Value& v) { settings.workflows = ReadWorkflows(v); }},
      {"metrics", [&](const Value& v) { settings.metrics = ReadMetrics(v); }},
  });
  if (settings.workers == 0) settings.workers = std::max(1u, std::thread::hardware_concurrency());
  return settings;
}

Settings LoadConfig(const std::filesystem::path& file, ConfigWarnings* warnings) {
  std::string text;
  if (const std::error_code error = ReadFile(file, text)) {
    throw ConfigError(file.string() + ": cannot read the config file: " + error.message());
  }
  return ParseConfig(text, file, warnings);
}

LogLevel ParseLogLevel(std::string_view text) {
  if (const std::optional<LogLevel> level = Lookup(text, kLogLevels)) return *level;
  throw ConfigError(
      Unknown("unknown log level '" + std::string(text) + "'", text, NamesOf(kLogLevels)));
}

}  // namespace workflowd
