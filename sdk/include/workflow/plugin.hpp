#pragma once

#include <cstdint>

#include <boost/config.hpp>
#include <boost/dll/alias.hpp>

#include <workflow/version.hpp>

namespace workflow {

// What a plugin records about the SDK it was compiled against. The daemon reads it before it
// runs any of the plugin's code and refuses a plugin whose major differs from its own.
struct PluginAbi {
  std::uint32_t major;
  std::uint32_t minor;
  const char* sdk_version;
};

// The symbols WORKFLOW_PLUGIN exports.
inline constexpr const char* kPluginAbiSymbol = "workflow_plugin_abi";
inline constexpr const char* kRegisterHandlersSymbol = "RegisterHandlers";

}  // namespace workflow

// Declares a plugin's entry point, once per plugin: WORKFLOW_PLUGIN(RegisterHandlers), where
// RegisterHandlers is a `void()` function that calls workflow::RegisterHandler. Exports the
// entry point (through Boost.DLL, as the alias "RegisterHandlers") and the SDK ABI version.
#define WORKFLOW_PLUGIN(register_handlers)                                                \
  extern "C" BOOST_SYMBOL_EXPORT const ::workflow::PluginAbi workflow_plugin_abi{          \
      WORKFLOW_ABI_MAJOR, WORKFLOW_ABI_MINOR, WORKFLOW_VERSION_STRING};                   \
  namespace workflow_plugin_entry {                                                       \
  static void RegisterHandlersEntry() { register_handlers(); }                            \
  }                                                                                       \
  BOOST_DLL_ALIAS(workflow_plugin_entry::RegisterHandlersEntry, RegisterHandlers)
