// libFuzzer target: the bytes are a workflowd.yaml. ParseConfig either refuses them with
// ConfigError (the one documented exception; anything else escaping is a crash) or returns
// settings within the documented ranges. Relative paths resolve against a directory that does
// not exist, so a password_file the fuzzer names is normally not found.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <workflow/workflow.hpp>

#include "config.hpp"

namespace {

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  workflowd::Settings settings;
  try {
    settings = workflowd::ParseConfig(yaml, "/nonexistent/workflowd-fuzz/workflowd.yaml");
  } catch (const workflowd::ConfigError&) {
    return 0;
  }
  Require(settings.workers >= 1 && settings.workers <= 1024, "workers out of range");
  Require(settings.broker.port >= 1, "port out of range");
  Require(settings.broker.prefetch >= 1, "prefetch out of range");
  Require(!settings.broker.host.empty() && !settings.broker.vhost.empty() &&
              !settings.broker.user.empty() && !settings.broker.password.empty(),
          "an empty broker string");
  Require(settings.max_message_bytes >= 1 && settings.max_message_bytes <= (std::size_t{128} << 20),
          "max_message_bytes out of range");
  Require(settings.plugins_dir.is_absolute(), "plugins_dir is not absolute");
  Require(workflow::IsValidQueueName(settings.dead_letter_queue), "invalid dead_letter_queue");
  for (const auto& [name, queue] : settings.queues) {
    Require(workflow::IsValidQueueName(name), "invalid queue name");
    for (const auto& [argument, value] : queue.arguments) {
      Require(argument.starts_with("x-") && argument != "x-queue-type", "bad queue argument");
    }
  }
  return 0;
}
