#include "plugin_loader.hpp"

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using workflowd::HandlerRegistry;
using workflowd::LoadedPlugin;
using workflowd::LoadPlugins;
using workflowd::PluginLoadError;

// The folder of one case in tests/plugins, and its single plugin.
fs::path CaseDir(std::string_view name) { return fs::path(WORKFLOW_TEST_PLUGINS_DIR) / name; }
fs::path CasePlugin(std::string_view name) { return CaseDir(name) / (std::string(name) + ".so"); }

// Loaded plugins with the registry of their handlers, declared so that the registry goes first.
struct Loaded {
  std::vector<LoadedPlugin> plugins;
  HandlerRegistry registry;
};

Loaded Load(const fs::path& dir) {
  Loaded loaded;
  loaded.plugins = LoadPlugins(dir, loaded.registry);
  return loaded;
}

// The one line with which LoadPlugins refuses dir; the registry it refused is left empty.
std::string Refusal(const fs::path& dir) {
  Loaded loaded;
  try {
    loaded.plugins = LoadPlugins(dir, loaded.registry);
  } catch (const PluginLoadError& error) {
    CHECK(loaded.registry.registrations().empty());
    std::string line = error.what();
    CHECK_THAT(line, !Contains("\n"));
    return line;
  }
  FAIL("LoadPlugins accepted " << dir);
  return {};
}

// A fresh directory, removed with what it holds.
class TempDir : public workflowd::testing::TempDir {
 public:
  TempDir() : workflowd::testing::TempDir("workflowd-plugin-test") {}
};

// Sends spdlog's default logger to a stream while it lives.
class LogCapture {
 public:
  explicit LogCapture(std::ostream& stream) : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(stream)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

 private:
  std::shared_ptr<spdlog::logger> previous_;
};

void AddHandlerOfTest(HandlerRegistry& registry) {
  registry.Add(workflow::Handler{"TestHandler", [](workflow::Message&) {}}, "test_queue",
               "plugin_loader_test");
}

}  // namespace

TEST_CASE("The good plugin's handlers are registered, found by queue and callable") {
  Loaded loaded = Load(CaseDir("good"));

  REQUIRE(loaded.plugins.size() == 1);
  const LoadedPlugin& plugin = loaded.plugins.front();
  CHECK(plugin.path == CasePlugin("good"));
  CHECK(plugin.abi.major == WORKFLOW_ABI_MAJOR);
  CHECK(plugin.abi.minor == WORKFLOW_ABI_MINOR);
  CHECK(std::string_view(plugin.abi.sdk_version) == WORKFLOW_VERSION_STRING);

  const workflowd::Registration* greet = loaded.registry.Find("good_greet");
  REQUIRE(greet != nullptr);
  CHECK(greet->handler.name == "GreetHandler");
  CHECK(greet->plugin == CasePlugin("good"));
  CHECK(loaded.registry.Find("good_echo") != nullptr);
  CHECK(loaded.registry.Find("good_greeted") == nullptr);

  workflow::host::Invocation invocation(greet->handler.name);
  workflow::Message message = workflow::Message::Parse(R"({"IncidentID":"i-1","name":"Ada"})");
  greet->handler.function(message);

  REQUIRE(invocation.outbox().size() == 1);
  const workflow::OutgoingMessage& sent = invocation.outbox().front();
  CHECK(sent.queue == "good_greeted");
  CHECK(sent.incident_id == "i-1");
  CHECK(sent.originator == "GreetHandler");
  CHECK(sent.src_tag == "greet");
  CHECK(sent.dest_tag == "greeted");
  CHECK(workflow::Message::Parse(sent.body).GetString("greeting") == "hello Ada");
}

TEST_CASE("The registry lists the good plugin's handlers sorted by queue, naming the plugin") {
  Loaded loaded = Load(CaseDir("good"));

  const auto& registrations = loaded.registry.registrations();
  REQUIRE(registrations.size() == 2);
  CHECK(registrations[0].queue == "good_echo");
  CHECK(registrations[1].queue == "good_greet");
  CHECK(loaded.registry.Table() ==
        "QUEUE       HANDLER       PLUGIN\n"
        "good_echo   EchoHandler   good.so\n"
        "good_greet  GreetHandler  good.so\n");
}

TEST_CASE("LoadPlugins logs each plugin before loading it") {
  std::ostringstream log;
  {
    LogCapture capture(log);
    Loaded loaded = Load(CaseDir("good"));
  }
  CHECK_THAT(log.str(), Contains("Loading plugin: " + CasePlugin("good").string()));
}

TEST_CASE("RegisterHandler outside a plugin's RegisterHandlers is refused after loading") {
  Loaded loaded = Load(CaseDir("good"));

  auto handler = [](workflow::Message&) {};
  CHECK_THROWS_MATCHES(
      workflow::RegisterHandler(workflow::Handler{"Late", handler}, "late_queue"),
      workflow::RegistrationError,
      Catch::Message("RegisterHandler(Late, 'late_queue') was called outside "
                     "RegisterHandlers: register handlers only in the plugin's entry "
                     "point, while the daemon loads it"));
  CHECK(loaded.registry.Find("late_queue") == nullptr);
}

TEST_CASE("A plugin without RegisterHandlers is refused") {
  std::string refusal = Refusal(CaseDir("no_entry_point"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("no_entry_point").string() +
                               ": no entry point: it exports no RegisterHandlers; "
                               "declare it with WORKFLOW_PLUGIN(RegisterHandlers)"));
}

TEST_CASE("A plugin without an ABI record is refused before its code runs") {
  std::string refusal = Refusal(CaseDir("no_abi"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("no_abi").string() + ": no SDK ABI record"));
  CHECK_THAT(refusal, Contains("not built with WORKFLOW_PLUGIN"));
  CHECK_THAT(refusal, Contains("rebuild the plugin against the installed workflow SDK"));
}

TEST_CASE("A plugin built for another SDK ABI major is refused, naming both versions") {
  std::string refusal = Refusal(CaseDir("wrong_abi"));
  CHECK_THAT(refusal,
             Contains("plugin " + CasePlugin("wrong_abi").string() + ": SDK ABI mismatch"));
  CHECK_THAT(refusal, Contains("built for ABI " + std::to_string(WORKFLOW_ABI_MAJOR + 1) +
                               ".0 (SDK " WORKFLOW_VERSION_STRING ")"));
  CHECK_THAT(refusal,
             Contains("this workflowd provides ABI " + std::to_string(WORKFLOW_ABI_MAJOR) + "." +
                      std::to_string(WORKFLOW_ABI_MINOR) + " (SDK " WORKFLOW_VERSION_STRING ")"));
  CHECK_THAT(refusal, Contains("; rebuild the plugin against the installed workflow SDK"));
}

TEST_CASE("A plugin whose ABI record has no SDK version is refused") {
  std::string refusal = Refusal(CaseDir("null_sdk_version"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("null_sdk_version").string() +
                               ": invalid SDK ABI record: its sdk_version is null; rebuild"));
}

TEST_CASE("A plugin whose RegisterHandlers throws is refused with the exception's text") {
  std::string refusal = Refusal(CaseDir("throwing_register"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("throwing_register").string() +
                               ": RegisterHandlers threw: database unreachable; fix the cause"));
}

TEST_CASE("A plugin whose RegisterHandlers throws a non-standard exception is refused") {
  std::string refusal = Refusal(CaseDir("throwing_nonstd"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("throwing_nonstd").string() +
                               ": RegisterHandlers threw: a non-standard exception"));
  CHECK_THAT(refusal, Contains("; make the plugin throw a std::exception"));
}

TEST_CASE("Two plugins claiming one queue are refused, naming both") {
  fs::path first = CaseDir("duplicate_queue") / "a_first.so";
  fs::path second = CaseDir("duplicate_queue") / "b_second.so";

  std::string refusal = Refusal(CaseDir("duplicate_queue"));
  CHECK_THAT(refusal, Contains("plugin " + second.string() +
                               ": a handler registration was refused: "
                               "queue 'shared_queue' is already taken by handler FirstHandler of "
                               "plugin " +
                               first.string() + ", so handler SecondHandler of plugin " +
                               second.string() + " cannot have it"));
  CHECK_THAT(refusal,
             Contains("; give every handler a valid queue name that no other handler has"));
}

TEST_CASE("A refused load leaves the registry as it was before") {
  std::vector<LoadedPlugin> plugins;
  HandlerRegistry registry;
  AddHandlerOfTest(registry);

  CHECK_THROWS_AS(plugins = LoadPlugins(CaseDir("duplicate_queue"), registry), PluginLoadError);

  REQUIRE(registry.registrations().size() == 1);
  CHECK(registry.registrations().front().queue == "test_queue");
}

TEST_CASE("A plugin claiming a queue that the registry already serves is refused") {
  Loaded loaded;
  AddHandlerOfTest(loaded.registry);
  loaded.registry.Add(workflow::Handler{"Squatter", [](workflow::Message&) {}}, "good_echo",
                      "earlier.so");

  CHECK_THROWS_WITH(loaded.plugins = LoadPlugins(CaseDir("good"), loaded.registry),
                    Contains("queue 'good_echo' is already taken by handler Squatter of plugin "
                             "earlier.so, so handler EchoHandler of plugin " +
                             CasePlugin("good").string()));
  CHECK(loaded.registry.registrations().size() == 2);
}

TEST_CASE("A plugin registering one queue twice is refused, saying so") {
  fs::path plugin = CasePlugin("duplicate_in_one");
  std::string refusal = Refusal(CaseDir("duplicate_in_one"));
  CHECK_THAT(refusal, Contains("plugin " + plugin.string() +
                               ": a handler registration was refused: "
                               "queue 'twice_queue' is registered twice by plugin " +
                               plugin.string() +
                               ": first for handler FirstHandler, then for handler SecondHandler"));
}

TEST_CASE("A plugin that registers no handlers is refused") {
  std::string refusal = Refusal(CaseDir("registers_nothing"));
  CHECK_THAT(refusal,
             Contains("plugin " + CasePlugin("registers_nothing").string() +
                      ": registered no handlers: RegisterHandlers returned without calling "
                      "workflow::RegisterHandler; register the plugin's handlers there"));
}

TEST_CASE("A plugin registering an invalid queue name is refused with the reason") {
  std::string refusal = Refusal(CaseDir("bad_queue_name"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("bad_queue_name").string() +
                               ": a handler registration was refused: "
                               "RegisterHandler(Handler, 'amq.reserved'): names starting with "
                               "'amq.' belong to the broker"));
}

TEST_CASE("A plugin that sends while registering is refused") {
  std::string refusal = Refusal(CaseDir("sends_while_registering"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("sends_while_registering").string() +
                               ": RegisterHandlers sent messages: 1 message(s), the first to queue "
                               "'announcements'; send messages from handlers"));
}

TEST_CASE("A plugin that flushes while registering is refused") {
  std::string refusal = Refusal(CaseDir("flushes_while_registering"));
  CHECK_THAT(refusal, Contains("plugin " + CasePlugin("flushes_while_registering").string() +
                               ": RegisterHandlers threw: FlushMessages cannot be called while "
                               "plugins are registering handlers"));
}

TEST_CASE("A file that is not a shared object is refused with the loader's reason") {
  fs::path plugin = CasePlugin("not_a_plugin");
  std::string refusal = Refusal(CaseDir("not_a_plugin"));
  CHECK_THAT(refusal, Contains("plugin " + plugin.string() + ": cannot be loaded: "));
  CHECK_THAT(refusal, Contains("invalid ELF header"));
  CHECK_THAT(refusal, Contains("; check that it is a workflow plugin built for this machine"));
  CHECK_THAT(refusal, Contains("(ldd " + plugin.string() + ")"));
}

TEST_CASE("A plugin file that any user may write is refused") {
  TempDir dir;
  fs::path plugin = dir.path() / "good.so";
  fs::copy_file(CasePlugin("good"), plugin);
  fs::permissions(plugin, fs::perms::others_write, fs::perm_options::add);

  std::string refusal = Refusal(dir.path());
  CHECK_THAT(refusal,
             Contains("plugin " + plugin.string() + ": refused: any user may write to it"));
  CHECK_THAT(refusal, Contains("; chmod o-w " + plugin.string()));
}

TEST_CASE("A plugin directory that any user may write is refused") {
  TempDir dir;
  fs::copy_file(CasePlugin("good"), dir.path() / "good.so");
  fs::permissions(dir.path(), fs::perms::others_write, fs::perm_options::add);

  std::string refusal = Refusal(dir.path());
  CHECK_THAT(refusal, Contains("plugin directory " + dir.path().string() +
                               ": refused: any user may write to it"));
  CHECK_THAT(refusal, Contains("; chmod o-w " + dir.path().string()));
}

TEST_CASE("A plugin directory without plugins is refused") {
  TempDir dir;
  fs::create_directory(dir.path() / "not_a_file.so");
  std::string refusal = Refusal(dir.path());
  CHECK_THAT(refusal, Contains("no plugins found in " + dir.path().string()));
  CHECK_THAT(refusal, Contains("; install a workflow plugin there, or set plugins_dir"));
}

TEST_CASE("A missing plugin directory is refused") {
  fs::path missing = CaseDir("no_such_case");
  std::string refusal = Refusal(missing);
  CHECK_THAT(refusal, Contains("plugin directory " + missing.string() +
                               ": cannot be read: No such file or directory; set plugins_dir"));
}

TEST_CASE("A plugin directory that is a file is refused") {
  std::string refusal = Refusal(CasePlugin("good"));
  CHECK_THAT(refusal,
             Contains("plugin directory " + CasePlugin("good").string() + ": not a directory"));
  CHECK_THAT(refusal, Contains("; set plugins_dir in workflowd.yaml"));
}
