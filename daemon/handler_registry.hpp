#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <workflow/workflow.hpp>

#include "metrics.hpp"

namespace workflowd {

struct Registration {
  std::string queue;
  workflow::Handler handler;
  workflow::HandlerOptions options;
  // The .so that registered it.
  std::filesystem::path plugin;
  // A stage of workflowd itself (_Cleanup): no message log, runs for ended incidents.
  bool builtin = false;
  // Its counters, for the metrics endpoint. On the heap, since atomics do not move with the
  // registry's vector; shared, since a load that fails restores a copy of the registry.
  std::shared_ptr<QueueMetrics> metrics = std::make_shared<QueueMetrics>();
};

// Which handler serves which queue: one handler per queue, across every plugin. Built once at
// start while plugins register, then only read. Its handlers are code inside the plugins, so the
// plugins must stay loaded until the registry is destroyed.
class HandlerRegistry {
 public:
  // Throws workflow::RegistrationError when the queue is taken, naming the queue, both handlers
  // and both plugins.
  void Add(workflow::Handler handler, std::string_view queue, const std::filesystem::path& plugin,
           const workflow::HandlerOptions& options = {});

  // A stage of workflowd itself; a plugin that registered the queue first is refused later.
  void AddBuiltin(workflow::Handler handler, std::string_view queue);

  // nullptr when no handler serves queue.
  const Registration* Find(std::string_view queue) const;

  // Sorted by queue name.
  const std::vector<Registration>& registrations() const { return registrations_; }

  // The --check-config listing: aligned columns QUEUE, HANDLER, PLUGIN (file name), one row per
  // registration, sorted by queue.
  std::string Table() const;

 private:
  void Insert(Registration&& registration);

  std::vector<Registration> registrations_;
};

}  // namespace workflowd
