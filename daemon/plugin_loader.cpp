#include "plugin_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

namespace workflowd {
namespace {

namespace fs = std::filesystem;

// RTLD_NOW: a missing symbol fails here, with the loader's message, not in a handler later.
// RTLD_LOCAL: one plugin's symbols cannot shadow another's.
constexpr auto kLoadMode = boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local;

constexpr std::string_view kPluginsDirRemedy =
    "set plugins_dir in workflowd.yaml to the directory that holds the plugins";

// Throws the one line an operator reads: "<subject>: <what failed>: <detail>; <remedy>".
[[noreturn]] void Refuse(std::string_view subject, std::string_view what_failed,
                         std::string_view detail, std::string_view remedy) {
  std::string line(subject);
  line.append(": ").append(what_failed).append(": ").append(detail).append("; ").append(remedy);
  throw PluginLoadError(line);
}

std::string PluginSubject(const fs::path& plugin) { return "plugin " + plugin.string(); }

// Loading a plugin runs its code as the daemon's user, so nobody else may write what is loaded.
void RefuseIfWritableByOthers(std::string_view subject, const fs::path& path) {
  std::error_code error;
  fs::perms permissions = fs::status(path, error).permissions();
  if (error) Refuse(subject, "cannot be read", error.message(), "check its permissions");
  if ((permissions & fs::perms::others_write) != fs::perms::none) {
    Refuse(subject, "refused", "any user may write to it, and so change the code workflowd runs",
           "chmod o-w " + path.string());
  }
}

// The *.so files in dir, sorted by name.
std::vector<fs::path> PluginFiles(const fs::path& dir) {
  const std::string subject = "plugin directory " + dir.string();
  std::error_code error;
  fs::file_status status = fs::status(dir, error);
  if (error) Refuse(subject, "cannot be read", error.message(), kPluginsDirRemedy);
  if (!fs::is_directory(status))
    Refuse(subject, "not a directory", "it is a file", kPluginsDirRemedy);
  RefuseIfWritableByOthers(subject, dir);

  std::vector<fs::path> files;
  for (fs::directory_iterator entry(dir, error), end; !error && entry != end;
       entry.increment(error)) {
    const fs::path& path = entry->path();
    if (path.extension() != ".so") continue;
    std::error_code type_error;
    const bool regular = entry->is_regular_file(type_error);
    if (type_error)
      Refuse(PluginSubject(path), "cannot be read", type_error.message(), "fix or remove it");
    if (regular) files.push_back(path);
  }
  if (error) Refuse(subject, "cannot be listed", error.message(), "check its permissions");
  if (files.empty()) {
    throw PluginLoadError(
        "no plugins found in " + dir.string() +
        ": it holds no regular file named *.so; install a workflow plugin there, or " +
        std::string(kPluginsDirRemedy));
  }
  std::ranges::sort(files);
  return files;
}

LoadedPlugin Open(const fs::path& file) {
  std::error_code error;
  boost::dll::shared_library library(file, error, kLoadMode);
  if (error) {
    // Boost.DLL's error code only says "bad file descriptor"; the loader's reason is in dlerror().
    const char* reason = dlerror();
    Refuse(PluginSubject(file), "cannot be loaded", reason != nullptr ? reason : error.message(),
           "check that it is a workflow plugin built for this machine and that the libraries it "
           "needs are installed (ldd " +
               file.string() + ")");
  }
  return LoadedPlugin{file, std::move(library), {}};
}

// Reads the ABI record that WORKFLOW_PLUGIN exports, before any of the plugin's code runs.
workflow::PluginAbi CheckedAbi(const LoadedPlugin& plugin) {
  const std::string subject = PluginSubject(plugin.path);
  constexpr std::string_view kRebuild = "rebuild the plugin against the installed workflow SDK";
  if (!plugin.library.has(workflow::kPluginAbiSymbol)) {
    Refuse(subject, "no SDK ABI record",
           "it exports no " + std::string(workflow::kPluginAbiSymbol) +
               ", so it was not built with WORKFLOW_PLUGIN",
           "declare its entry point with WORKFLOW_PLUGIN(RegisterHandlers) and " +
               std::string(kRebuild));
  }
  const auto abi = plugin.library.get<const workflow::PluginAbi>(workflow::kPluginAbiSymbol);
  if (abi.sdk_version == nullptr) {
    Refuse(subject, "invalid SDK ABI record", "its sdk_version is null", kRebuild);
  }
  if (abi.major != WORKFLOW_ABI_MAJOR) {
    Refuse(subject, "SDK ABI mismatch",
           "the plugin was built for ABI " + std::to_string(abi.major) + "." +
               std::to_string(abi.minor) + " (SDK " + abi.sdk_version +
               "), this workflowd provides ABI " + std::to_string(WORKFLOW_ABI_MAJOR) + "." +
               std::to_string(WORKFLOW_ABI_MINOR) + " (SDK " + WORKFLOW_VERSION_STRING + ")",
           kRebuild);
  }
  return abi;
}

// The runtime installed while one plugin's RegisterHandlers runs: it records that plugin's
// handlers and refuses to publish.
class RegistrationRuntime final : public workflow::host::Runtime {
 public:
  RegistrationRuntime(HandlerRegistry& registry, const fs::path& plugin)
      : registry_(registry), plugin_(plugin) {}

  void RegisterHandler(workflow::Handler handler, std::string_view queue,
                       const workflow::HandlerOptions& options) override {
    registry_.Add(std::move(handler), queue, plugin_, options);
    ++registered_;
  }

  void Publish(const std::vector<workflow::OutgoingMessage>&) override {
    throw workflow::PublishError(
        "FlushMessages cannot be called while plugins are registering handlers: there is no "
        "broker connection yet");
  }

  std::size_t registered() const { return registered_; }

 private:
  HandlerRegistry& registry_;
  const fs::path& plugin_;
  std::size_t registered_ = 0;
};

// Installs a runtime for the lifetime of this object, so that RegisterHandler outside a plugin's
// RegisterHandlers keeps failing.
class InstalledRuntime {
 public:
  explicit InstalledRuntime(workflow::host::Runtime& runtime) {
    workflow::host::InstallRuntime(&runtime);
  }
  ~InstalledRuntime() { workflow::host::InstallRuntime(nullptr); }
  InstalledRuntime(const InstalledRuntime&) = delete;
  InstalledRuntime& operator=(const InstalledRuntime&) = delete;
};

// Runs the plugin's RegisterHandlers. Its exceptions become text here, while the library that
// threw them is certainly loaded.
void RegisterHandlersOf(const LoadedPlugin& plugin, HandlerRegistry& registry) {
  const std::string subject = PluginSubject(plugin.path);
  if (!plugin.library.has(workflow::kRegisterHandlersSymbol)) {
    Refuse(subject, "no entry point",
           "it exports no " + std::string(workflow::kRegisterHandlersSymbol),
           "declare it with WORKFLOW_PLUGIN(RegisterHandlers)");
  }
  auto& register_handlers = plugin.library.get_alias<void()>(workflow::kRegisterHandlersSymbol);

  RegistrationRuntime runtime(registry, plugin.path);
  // A send() made while registering lands in this outbox, not in the thread's producer outbox.
  workflow::host::Invocation invocation(workflow::kRegisterHandlersSymbol);
  try {
    InstalledRuntime installed(runtime);
    register_handlers();
  } catch (const workflow::RegistrationError& error) {
    Refuse(subject, "a handler registration was refused", error.what(),
           "give every handler a valid queue name that no other handler has");
  } catch (const std::exception& error) {
    Refuse(subject, "RegisterHandlers threw", error.what(),
           "fix the cause, or the plugin, and restart workflowd");
  } catch (...) {
    Refuse(subject, "RegisterHandlers threw", "a non-standard exception, which carries no message",
           "make the plugin throw a std::exception that says what went wrong");
  }
  if (!invocation.outbox().empty()) {
    Refuse(subject, "RegisterHandlers sent messages",
           std::to_string(invocation.outbox().size()) + " message(s), the first to queue '" +
               invocation.outbox().front().queue + "'",
           "send messages from handlers, and start incidents with workflowctl");
  }
  if (runtime.registered() == 0) {
    Refuse(subject, "registered no handlers",
           "RegisterHandlers returned without calling workflow::RegisterHandler",
           "register the plugin's handlers there, or remove the file");
  }
}

// Puts the registry back as it was unless committed. It must run before the plugins unload:
// even destroying a std::function runs code of the plugin that made it.
class RegistryRollback {
 public:
  explicit RegistryRollback(HandlerRegistry& registry) : registry_(registry), saved_(registry) {}
  ~RegistryRollback() {
    if (!committed_) registry_ = std::move(saved_);
  }
  RegistryRollback(const RegistryRollback&) = delete;
  RegistryRollback& operator=(const RegistryRollback&) = delete;

  void Commit() { committed_ = true; }

 private:
  HandlerRegistry& registry_;
  HandlerRegistry saved_;
  bool committed_ = false;
};

}  // namespace

std::vector<LoadedPlugin> LoadPlugins(const fs::path& dir, HandlerRegistry& registry) {
  const std::vector<fs::path> files = PluginFiles(dir);
  std::vector<LoadedPlugin> plugins;
  plugins.reserve(files.size());
  RegistryRollback rollback(registry);  // declared after plugins, so it runs before they unload
  for (const fs::path& file : files) {
    spdlog::info("Loading plugin: {}", file.string());
    RefuseIfWritableByOthers(PluginSubject(file), file);
    LoadedPlugin& plugin = plugins.emplace_back(Open(file));
    plugin.abi = CheckedAbi(plugin);
    RegisterHandlersOf(plugin, registry);
  }
  rollback.Commit();
  return plugins;
}

}  // namespace workflowd
