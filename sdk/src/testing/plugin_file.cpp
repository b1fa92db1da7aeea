#include "plugin_file.hpp"

#include <dlfcn.h>

#include <system_error>
#include <utility>

#include <workflow/errors.hpp>
#include <workflow/plugin.hpp>
#include <workflow/version.hpp>

namespace workflow::testing::detail {
namespace {

// As workflowd loads plugins (daemon/plugin_loader.cpp): a missing symbol fails here, and one
// plugin's symbols cannot shadow another's.
constexpr auto kLoadMode = boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local;

constexpr std::string_view kRebuild = "rebuild the plugin against the installed workflow SDK";

[[noreturn]] void Refuse(const std::filesystem::path& plugin, std::string_view what_failed,
                         std::string_view detail, std::string_view remedy) {
  throw Error(PluginRefusal(plugin, what_failed, detail, remedy));
}

void CheckAbi(const PluginFile& plugin) {
  if (!plugin.library.has(kPluginAbiSymbol)) {
    Refuse(plugin.path, "no SDK ABI record",
           "it exports no " + std::string(kPluginAbiSymbol) + ", so it was not built with WORKFLOW_PLUGIN",
           "declare its entry point with WORKFLOW_PLUGIN(RegisterHandlers) and " + std::string(kRebuild));
  }
  const auto& abi = plugin.library.get<const PluginAbi>(kPluginAbiSymbol);
  if (abi.sdk_version == nullptr)
    Refuse(plugin.path, "invalid SDK ABI record", "its sdk_version is null", kRebuild);
  if (abi.major != WORKFLOW_ABI_MAJOR) {
    Refuse(plugin.path, "SDK ABI mismatch",
           "the plugin was built for ABI " + std::to_string(abi.major) + "." + std::to_string(abi.minor) +
               " (SDK " + abi.sdk_version + "), this SDK provides ABI " + std::to_string(WORKFLOW_ABI_MAJOR) +
               "." + std::to_string(WORKFLOW_ABI_MINOR) + " (SDK " + WORKFLOW_VERSION_STRING + ")",
           kRebuild);
  }
}

}  // namespace

std::string PluginRefusal(const std::filesystem::path& plugin, std::string_view what_failed,
                          std::string_view detail, std::string_view remedy) {
  std::string line = "plugin " + plugin.string();
  line.append(": ").append(what_failed).append(": ").append(detail).append("; ").append(remedy);
  return line;
}

PluginFile OpenPluginFile(const std::filesystem::path& file) {
  PluginFile plugin{.path = file};
  std::error_code error;
  plugin.library.load(file, error, kLoadMode);
  if (error) {
    // Boost.DLL's error code only says "bad file descriptor"; the loader's reason is in dlerror().
    const char* reason = dlerror();
    Refuse(file, "cannot be loaded", reason != nullptr ? reason : error.message(),
           "check that it is a workflow plugin built for this machine and that the libraries it needs "
           "are installed (ldd " +
               file.string() + ")");
  }
  CheckAbi(plugin);
  if (!plugin.library.has(kRegisterHandlersSymbol)) {
    Refuse(file, "no entry point", "it exports no " + std::string(kRegisterHandlersSymbol),
           "declare it with WORKFLOW_PLUGIN(RegisterHandlers)");
  }
  plugin.register_handlers = &plugin.library.get_alias<void()>(kRegisterHandlersSymbol);
  return plugin;
}

}  // namespace workflow::testing::detail
