#pragma once

#include <filesystem>
#include <stdexcept>
#include <vector>

#include <boost/dll/shared_library.hpp>
#include <workflow/plugin.hpp>

#include "handler_registry.hpp"

namespace workflowd {

// A plugin refused at start. what() is the one line the operator reads:
// "plugin <path>: <what failed>: <detail>; <remedy>".
class PluginLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A loaded plugin. Every handler it registered is code inside library, so it must outlive them
// all: the daemon keeps its plugins for its whole life and never unloads them.
struct LoadedPlugin {
  std::filesystem::path path;
  boost::dll::shared_library library;
  workflow::PluginAbi abi;
};

// Loads every regular file named *.so in dir, in name order: checks its permissions and its
// SDK ABI record before running any of its code, then calls its RegisterHandlers, which adds
// to registry. Throws PluginLoadError on the first refusal, with registry as it was before the
// call. On success, destroy registry before the plugins returned.
std::vector<LoadedPlugin> LoadPlugins(const std::filesystem::path& dir, HandlerRegistry& registry);

}  // namespace workflowd
