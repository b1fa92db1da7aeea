#include "config.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using workflowd::ConfigError;
using workflowd::ConfigWarnings;
using workflowd::LoadConfig;
using workflowd::LogLevel;
using workflowd::ParseConfig;
using workflowd::QueueArgument;
using workflowd::QueueType;
using workflowd::Settings;

namespace {

constexpr const char* kFile = "/etc/workflowd/workflowd.yaml";

Settings Parse(std::string_view yaml) { return ParseConfig(yaml, kFile); }

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir : public workflowd::testing::TempDir {
 public:
  TempDir() : workflowd::testing::TempDir("workflowd-config-test") {}

  fs::path Write(const std::string& name, std::string_view content) const {
    const fs::path file = path() / name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
};

}  // namespace

TEST_CASE("an empty map gives the documented defaults", "[config]") {
  const Settings settings = Parse("{}");
  CHECK(settings.broker.host == "127.0.0.1");
  CHECK(settings.broker.port == 5672);
  CHECK(settings.broker.vhost == "/");
  CHECK(settings.broker.user == "guest");
  CHECK(settings.broker.password == "guest");
  CHECK(settings.broker.heartbeat == std::chrono::seconds(30));
  CHECK(settings.broker.prefetch == 256);
  CHECK(settings.broker.connect_timeout == std::chrono::seconds(5));
  CHECK(settings.workers == 4);
  CHECK(settings.plugins_dir == "/usr/lib/workflowd/plugins");
  CHECK(settings.log_level == LogLevel::kInfo);
  CHECK(settings.max_message_bytes == 1048576);
  CHECK(settings.dead_letter_queue == "workflowd.dead-letter");
  CHECK(settings.max_deliveries == 5);
  CHECK(settings.shutdown_timeout == std::chrono::seconds(30));
  CHECK(settings.queues.empty());
}

TEST_CASE("every key is read into its field with its unit", "[config]") {
  const Settings settings = Parse(R"(
broker:
  host: rabbit.example.org
  port: 5671
  vhost: workflows
  user: workflowd
  password: s3cret
  heartbeat: 0
  prefetch: 10
  connect_timeout: 2
workers: 8
plugins_dir: /opt/plugins
log_level: debug
max_message_bytes: 134217728
dead_letter_queue: poison
max_deliveries: 1000
shutdown_timeout: 0
)");
  CHECK(settings.broker.host == "rabbit.example.org");
  CHECK(settings.broker.port == 5671);
  CHECK(settings.broker.vhost == "workflows");
  CHECK(settings.broker.user == "workflowd");
  CHECK(settings.broker.password == "s3cret");
  CHECK(settings.broker.heartbeat == std::chrono::seconds(0));
  CHECK(settings.broker.prefetch == 10);
  CHECK(settings.broker.connect_timeout == std::chrono::milliseconds(2000));
  CHECK(settings.workers == 8);
  CHECK(settings.plugins_dir == "/opt/plugins");
  CHECK(settings.log_level == LogLevel::kDebug);
  CHECK(settings.max_message_bytes == 134217728);
  CHECK(settings.dead_letter_queue == "poison");
  CHECK(settings.max_deliveries == 1000);
  CHECK(settings.shutdown_timeout == std::chrono::milliseconds(0));
}

TEST_CASE("workers: 0 means one per core", "[config]") {
  CHECK(Parse("workers: 0").workers >= 1);
}

TEST_CASE("an unknown key is named with a suggestion and the allowed keys", "[config]") {
  REQUIRE_THROWS_WITH(Parse("# workflowd\n\nbroker:\n  hots: rabbit\n"),
                      "/etc/workflowd/workflowd.yaml:4:3: broker.hots: unknown key; did you mean "
                      "'host'? (allowed: host, port, vhost, user, password, password_file, "
                      "heartbeat, prefetch, connect_timeout)");
  REQUIRE_THROWS_WITH(Parse("Workers: 2"), Contains("1:1: Workers: unknown key; did you mean "
                                                    "'workers'?"));
  REQUIRE_THROWS_WITH(Parse("colour: blue"),
                      "/etc/workflowd/workflowd.yaml:1:1: colour: unknown key (allowed: broker, "
                      "workers, plugins_dir, log_level, max_message_bytes, dead_letter_queue, "
                      "max_deliveries, shutdown_timeout, queues, state, workflows, metrics)");
  REQUIRE_THROWS_WITH(Parse("queues:\n  B_queue:\n    tpye: quorum\n"),
                      Contains("3:5: queues.B_queue.tpye: unknown key; did you mean 'type'? "
                               "(allowed: type, arguments)"));
}

TEST_CASE("a duplicate key is refused", "[config]") {
  REQUIRE_THROWS_WITH(Parse("workers: 2\nworkers: 3\n"),
                      Contains(":2:1: workers: duplicate key (first set on line 1)"));
}

TEST_CASE("a wrong type names the expected type and the actual value", "[config]") {
  REQUIRE_THROWS_WITH(Parse("workers: many"),
                      "/etc/workflowd/workflowd.yaml:1:10: workers: expected an integer from 0 "
                      "to 1024, got 'many'");
  REQUIRE_THROWS_WITH(Parse("broker:\n  port: {a: 1}\n"),
                      Contains("2:9: broker.port: expected an integer from 1 to 65535, got a map"));
  REQUIRE_THROWS_WITH(Parse("broker:\n  host: [a, b]\n"),
                      Contains("broker.host: expected a string, got a sequence"));
  REQUIRE_THROWS_WITH(Parse("broker: rabbit"), Contains("broker: expected a map, got 'rabbit'"));
  REQUIRE_THROWS_WITH(Parse("broker:\n  heartbeat: 1.5\n"),
                      Contains("broker.heartbeat: expected a number of seconds from 0 to 3600, "
                               "got '1.5'"));
}

TEST_CASE("an out-of-range value names the range", "[config]") {
  REQUIRE_THROWS_WITH(Parse("broker:\n  port: 70000\n"),
                      "/etc/workflowd/workflowd.yaml:2:9: broker.port: expected an integer from "
                      "1 to 65535, got '70000'");
  REQUIRE_THROWS_WITH(Parse("broker:\n  connect_timeout: 0\n"),
                      Contains("broker.connect_timeout: expected a number of seconds from 1 to "
                               "300, got '0'"));
  REQUIRE_THROWS_WITH(Parse("max_message_bytes: 134217729"),
                      Contains("max_message_bytes: expected an integer from 1 to 134217728, got "
                               "'134217729'"));
  REQUIRE_THROWS_WITH(Parse("workers: -1"), Contains("workers: expected an integer from 0 to "
                                                     "1024, got '-1'"));
  // Every message gets its handler run at least once.
  REQUIRE_THROWS_WITH(Parse("max_deliveries: 0"), Contains("max_deliveries: expected an integer from 1 to "
                                                           "1000, got '0'"));
}

TEST_CASE("an unknown enum value lists the allowed values", "[config]") {
  REQUIRE_THROWS_WITH(Parse("log_level: verbose"),
                      "/etc/workflowd/workflowd.yaml:1:12: log_level: unknown value 'verbose' "
                      "(allowed: trace, debug, info, warning, error)");
  REQUIRE_THROWS_WITH(Parse("queues:\n  B_queue:\n    type: quorun\n"),
                      Contains("3:11: queues.B_queue.type: unknown value 'quorun'; did you mean "
                               "'quorum'? (allowed: classic, quorum)"));
}

TEST_CASE("ParseLogLevel reads --log-level and lists the allowed values", "[config]") {
  CHECK(workflowd::ParseLogLevel("trace") == LogLevel::kTrace);
  CHECK(workflowd::ParseLogLevel("warning") == LogLevel::kWarning);
  REQUIRE_THROWS_AS(workflowd::ParseLogLevel("Error"), ConfigError);
  REQUIRE_THROWS_WITH(workflowd::ParseLogLevel("Error"),
                      "unknown log level 'Error'; did you mean 'error'? (allowed: trace, debug, "
                      "info, warning, error)");
}

TEST_CASE("a key with no value is refused, pointing at the key", "[config]") {
  REQUIRE_THROWS_WITH(Parse("broker:\n  host:\n  port: 5672\n"),
                      "/etc/workflowd/workflowd.yaml:2:3: broker.host: a value is required; "
                      "expected a string");
  REQUIRE_THROWS_WITH(Parse("workers: ~"), Contains("1:1: workers: a value is required"));
  REQUIRE_THROWS_WITH(Parse("broker:\n"),
                      Contains("1:1: broker: a value is required; expected a map (write {} for "
                               "an empty one)"));
  REQUIRE_THROWS_WITH(Parse("broker:\n  host: ''\n"),
                      Contains("broker.host: expected a non-empty string, got ''"));
}

TEST_CASE("password and password_file are exclusive", "[config]") {
  REQUIRE_THROWS_WITH(Parse("broker:\n  password: a\n  password_file: b\n"),
                      "/etc/workflowd/workflowd.yaml:3:3: broker.password_file: set either "
                      "'password' or 'password_file', not both");
}

TEST_CASE("password_file is read relative to the config file and stripped", "[config]") {
  const TempDir dir;
  dir.Write("password", "s3cret\n\n");
  const fs::path config = dir.Write("workflowd.yaml", "broker:\n  password_file: password\n");
  CHECK(LoadConfig(config).broker.password == "s3cret");

  dir.Write("crlf-password", "s3cret\r\n");
  CHECK(ParseConfig("broker: {password_file: crlf-password}", config).broker.password ==
        "s3cret");

  const fs::path missing = dir.path() / "missing";
  REQUIRE_THROWS_WITH(
      ParseConfig("broker:\n  password_file: missing\n", config),
      config.string() + ":2:18: broker.password_file: cannot read the password file '" +
          missing.string() + "': No such file or directory");

  dir.Write("empty", "\n");
  REQUIRE_THROWS_WITH(ParseConfig("broker: {password_file: empty}", config),
                      Contains("broker.password_file: the password file '" +
                               (dir.path() / "empty").string() + "' is empty"));
}

TEST_CASE("a password file its group or others can read loads, with a warning naming it and its mode",
          "[config]") {
  const TempDir dir;
  const fs::path config = dir.path() / "workflowd.yaml";
  const fs::path password = dir.Write("password", "s3cret\n");
  const std::string yaml = "broker:\n  password_file: password\n";
  const std::string prefix = config.string() + ":2:18: broker.password_file: the password file '" +
                             password.string() + "' is readable by ";
  const std::string remedy = "; it holds the broker password: make it readable by the daemon's user only "
                             "(chmod 0400)";
  const auto warnings_at = [&](fs::perms mode) {
    fs::permissions(password, mode);
    ConfigWarnings warnings;
    CHECK(ParseConfig(yaml, config, &warnings).broker.password == "s3cret");
    return warnings;
  };
  using fs::perms;
  CHECK(warnings_at(perms::owner_read | perms::owner_write | perms::group_read | perms::others_read) ==
        ConfigWarnings{prefix + "its group and others (mode 0644)" + remedy});
  CHECK(warnings_at(perms::owner_read | perms::owner_write | perms::group_read) ==
        ConfigWarnings{prefix + "its group (mode 0640)" + remedy});
  CHECK(warnings_at(perms::owner_read | perms::others_read) == ConfigWarnings{prefix + "others (mode 0404)" + remedy});
  CHECK(warnings_at(perms::owner_read).empty());
  CHECK(warnings_at(perms::owner_read | perms::owner_write).empty());
  // Writable by others is not a leak of the password; the warning is about who can read it.
  CHECK(warnings_at(perms::owner_read | perms::group_write | perms::others_write).empty());
}

TEST_CASE("a password file that is not a small regular file is refused unread", "[config]") {
  const TempDir dir;
  const fs::path config = dir.path() / "workflowd.yaml";
  const auto refusal = [&](const fs::path& file) {
    return config.string() + ":1:25: broker.password_file: the password file '" + file.string() + "' ";
  };
  const auto parse = [&](const fs::path& file) {
    return ParseConfig("broker: {password_file: " + file.string() + "}", config);
  };

  fs::create_directory(dir.path() / "a-directory");
  REQUIRE_THROWS_WITH(parse(dir.path() / "a-directory"),
                      refusal(dir.path() / "a-directory") + "is a directory, not a regular file");
  // Reading it would never end.
  REQUIRE_THROWS_WITH(parse("/dev/zero"), refusal("/dev/zero") + "is a character device, not a regular file");
  // Opening it for reading would wait for a writer that never comes.
  const fs::path fifo = dir.path() / "a-fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE_THROWS_WITH(parse(fifo), refusal(fifo) + "is a FIFO, not a regular file");

  const fs::path large = dir.Write("large", std::string(4097, 'x'));
  REQUIRE_THROWS_WITH(parse(large), refusal(large) + "is 4097 bytes; a password file holds at most 4096 bytes");
  const fs::path largest = dir.Write("largest", std::string(4095, 'y') + "\n");
  CHECK(parse(largest).broker.password == std::string(4095, 'y'));

  // A symbolic link is followed: what counts is the file it names.
  fs::create_symlink(large, dir.path() / "link-to-large");
  REQUIRE_THROWS_WITH(parse(dir.path() / "link-to-large"),
                      refusal(dir.path() / "link-to-large") + "is 4097 bytes; a password file holds at most 4096 bytes");
}

TEST_CASE("a relative plugins_dir resolves against the config file's directory", "[config]") {
  CHECK(Parse("plugins_dir: plugins").plugins_dir == "/etc/workflowd/plugins");
  CHECK(Parse("plugins_dir: ../lib/workflowd/./plugins").plugins_dir ==
        "/etc/lib/workflowd/plugins");
  CHECK(Parse("plugins_dir: /srv/plugins").plugins_dir == "/srv/plugins");
}

TEST_CASE("a YAML syntax error carries its line and column", "[config]") {
  REQUIRE_THROWS_WITH(Parse("broker:\n  host: [127.0.0.1\nworkers: 2\n"),
                      Contains("/etc/workflowd/workflowd.yaml:3:"));
  REQUIRE_THROWS_WITH(Parse("workers: 2: 3\n"),
                      "/etc/workflowd/workflowd.yaml:1:11: YAML syntax error: illegal map value");
}

TEST_CASE("an empty file or a top level that is not a map is refused", "[config]") {
  REQUIRE_THROWS_WITH(Parse(""), "/etc/workflowd/workflowd.yaml:1:1: the config file is empty; "
                                 "expected a map of settings");
  REQUIRE_THROWS_WITH(Parse("# only a comment\n"), Contains("the config file is empty"));
  REQUIRE_THROWS_WITH(Parse("- broker\n"),
                      "/etc/workflowd/workflowd.yaml:1:1: expected a map of settings at the top "
                      "level, got a sequence");
}

TEST_CASE("a missing config file names the file and the reason", "[config]") {
  const TempDir dir;
  const fs::path missing = dir.path() / "workflowd.yaml";
  REQUIRE_THROWS_WITH(LoadConfig(missing),
                      missing.string() + ": cannot read the config file: No such file or directory");
  REQUIRE_THROWS_WITH(LoadConfig(dir.path()),
                      dir.path().string() + ": cannot read the config file: Is a directory");
}

TEST_CASE("queues: defaults, quorum type and typed x-arguments", "[config]") {
  const Settings settings = Parse(R"(
queues:
  A_queue: {}
  B_queue:
  stage.with.dots:
    type: quorum
    arguments:
      x-delivery-limit: 5
      x-single-active-consumer: true
      x-overflow: reject-publish
      x-quoted-number: "5"
)");
  REQUIRE(settings.queues.size() == 3);
  CHECK(settings.queues.at("A_queue").type == QueueType::kClassic);
  CHECK(settings.queues.at("A_queue").arguments.empty());
  CHECK(settings.queues.at("B_queue").type == QueueType::kClassic);

  const auto& quorum = settings.queues.at("stage.with.dots");
  CHECK(quorum.type == QueueType::kQuorum);
  CHECK(quorum.arguments.at("x-delivery-limit") == QueueArgument(std::int64_t{5}));
  CHECK(quorum.arguments.at("x-single-active-consumer") == QueueArgument(true));
  CHECK(quorum.arguments.at("x-overflow") == QueueArgument(std::string("reject-publish")));
  CHECK(quorum.arguments.at("x-quoted-number") == QueueArgument(std::string("5")));
}

TEST_CASE("queue arguments must be x-arguments with scalar values", "[config]") {
  REQUIRE_THROWS_WITH(Parse("queues:\n  q:\n    arguments:\n      delivery-limit: 5\n"),
                      Contains("4:7: queues.q.arguments.delivery-limit: queue arguments start "
                               "with 'x-'"));
  REQUIRE_THROWS_WITH(Parse("queues:\n  q:\n    arguments: {x-queue-type: quorum}\n"),
                      Contains("queues.q.arguments.x-queue-type: set the queue type with 'type'"));
  REQUIRE_THROWS_WITH(Parse("queues:\n  q:\n    arguments: {x-max-length: [1]}\n"),
                      Contains("queues.q.arguments.x-max-length: expected an integer, true, false "
                               "or a string, got a sequence"));
}

TEST_CASE("an invalid queue name is refused with the reason", "[config]") {
  REQUIRE_THROWS_WITH(Parse("queues:\n  amq.mine: {}\n"),
                      "/etc/workflowd/workflowd.yaml:2:3: queues.amq.mine: invalid queue name: "
                      "names starting with 'amq.' belong to the broker");
  REQUIRE_THROWS_WITH(Parse("dead_letter_queue: amq.dead"),
                      Contains("1:20: dead_letter_queue: invalid queue name: names starting with "
                               "'amq.' belong to the broker"));
}

TEST_CASE("the shipped config/workflowd.yaml loads", "[config]") {
  const Settings settings = LoadConfig(fs::path(WORKFLOW_SOURCE_DIR) / "config" / "workflowd.yaml");
  CHECK(settings.broker.host == "127.0.0.1");
  CHECK(settings.broker.port == 5672);
  CHECK(settings.broker.user == "guest");
  CHECK(settings.broker.password == "guest");
  CHECK(settings.plugins_dir == "/usr/lib/workflowd/plugins");
  CHECK(settings.queues.size() == 3);
  CHECK(settings.queues.count("A_queue") == 1);
  CHECK(settings.queues.count("B_queue") == 1);
  CHECK(settings.state.path == "/var/lib/workflowd/state.db");
  CHECK(settings.workflows.at("quicksort").init_queue == "quicksort_init");
  CHECK(settings.workflows.at("simple").init_queue == "A_queue");
  CHECK(settings.metrics == workflowd::MetricsSettings{});
}

TEST_CASE("state: path, message log level, lease and cleanup timeout", "[config]") {
  const Settings defaults = Parse("{}");
  CHECK(defaults.state.path == "/var/lib/workflowd/state.db");
  CHECK(defaults.state.message_log == workflowd::MessageLogLevel::kAll);
  CHECK(defaults.state.lease == std::chrono::seconds(300));
  CHECK(defaults.state.cleanup_timeout == std::chrono::seconds(600));

  const Settings settings = Parse("state:\n  path: state/wf.db\n  message_log: errors\n  lease: 5\n"
                                  "  cleanup_timeout: 0\n");
  CHECK(settings.state.path == "/etc/workflowd/state/wf.db");
  CHECK(settings.state.message_log == workflowd::MessageLogLevel::kErrors);
  CHECK(settings.state.lease == std::chrono::seconds(5));
  CHECK(settings.state.cleanup_timeout == std::chrono::seconds(0));

  REQUIRE_THROWS_WITH(Parse("state:\n  message_log: some\n"),
                      "/etc/workflowd/workflowd.yaml:2:16: state.message_log: unknown value 'some' "
                      "(allowed: all, errors, off)");
  REQUIRE_THROWS_WITH(Parse("state:\n  lease: 0\n"),
                      Contains("state.lease: expected a number of seconds from 1 to 86400, got '0'"));
}

TEST_CASE("workflows: each kind needs a valid init queue, the shutdown queue is optional", "[config]") {
  const Settings settings = Parse("workflows:\n  fire:\n    init_queue: fire_init\n"
                                  "    shutdown_queue: fire_stop\n  flood:\n    init_queue: flood_init\n");
  CHECK(settings.workflows.at("fire").init_queue == "fire_init");
  CHECK(settings.workflows.at("fire").shutdown_queue == "fire_stop");
  CHECK(settings.workflows.at("flood").shutdown_queue.empty());

  REQUIRE_THROWS_WITH(Parse("workflows:\n  fire:\n    shutdown_queue: fire_stop\n"),
                      "/etc/workflowd/workflowd.yaml:2:3: workflows.fire: init_queue is required: the "
                      "queue of the first stage");
  REQUIRE_THROWS_WITH(Parse("workflows:\n  fire:\n    init_queue: fire_init\n    shutdown_queu: x\n"),
                      Contains("workflows.fire.shutdown_queu: unknown key; did you mean 'shutdown_queue'?"));
}

TEST_CASE("metrics: off by default, on loopback; the address must be an IP literal", "[config]") {
  const Settings defaults = Parse("{}");
  CHECK(defaults.metrics.address == "127.0.0.1");
  CHECK(defaults.metrics.port == 0);
  CHECK(defaults.metrics.stall_timeout == std::chrono::seconds(300));

  const Settings settings = Parse("metrics:\n  address: \"::1\"\n  port: 9464\n  stall_timeout: 60\n");
  CHECK(settings.metrics.address == "::1");
  CHECK(settings.metrics.port == 9464);
  CHECK(settings.metrics.stall_timeout == std::chrono::seconds(60));

  REQUIRE_THROWS_WITH(Parse("metrics:\n  address: localhost\n"),
                      "/etc/workflowd/workflowd.yaml:2:12: metrics.address: expected an IPv4 or IPv6 "
                      "address such as 127.0.0.1 or ::1, got 'localhost'");
  REQUIRE_THROWS_WITH(Parse("metrics:\n  port: 70000\n"),
                      Contains("metrics.port: expected an integer from 0 to 65535, got '70000'"));
  REQUIRE_THROWS_WITH(Parse("metrics:\n  stall_timeout: 0\n"),
                      Contains("metrics.stall_timeout: expected a number of seconds from 1 to 86400"));
  REQUIRE_THROWS_WITH(Parse("metrics:\n  prot: 9464\n"), Contains("metrics.prot: unknown key; did you mean 'port'?"));
}
