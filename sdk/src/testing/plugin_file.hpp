#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <boost/dll/shared_library.hpp>

namespace workflow::testing::detail {

// A plugin file opened as workflowd opens it: loaded RTLD_NOW | RTLD_LOCAL, its SDK ABI record
// checked before any of its code runs, its entry point found. The handlers it registers are its
// code, so it must outlive them.
struct PluginFile {
  std::filesystem::path path;
  boost::dll::shared_library library;
  void (*register_handlers)() = nullptr;
};

// Throws workflow::Error with the line workflowd would refuse the plugin with.
PluginFile OpenPluginFile(const std::filesystem::path& file);

// workflowd's one refusal line: "plugin <path>: <what failed>: <detail>; <remedy>".
std::string PluginRefusal(const std::filesystem::path& plugin, std::string_view what_failed,
                          std::string_view detail, std::string_view remedy);

}  // namespace workflow::testing::detail
