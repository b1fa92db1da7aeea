#include "handler_registry.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <utility>

namespace workflowd {
namespace {

auto LowerBound(const std::vector<Registration>& registrations, std::string_view queue) {
  return std::ranges::lower_bound(registrations, queue, std::less<>{}, &Registration::queue);
}

std::string DuplicateMessage(const Registration& first, const workflow::Handler& second,
                             const std::filesystem::path& second_plugin) {
  if (first.plugin == second_plugin) {
    return "queue '" + first.queue + "' is registered twice by plugin " + first.plugin.string() +
           ": first for handler " + first.handler.name + ", then for handler " + second.name;
  }
  return "queue '" + first.queue + "' is already taken by handler " + first.handler.name +
         " of plugin " + first.plugin.string() + ", so handler " + second.name + " of plugin " +
         second_plugin.string() + " cannot have it";
}

}  // namespace

void HandlerRegistry::Add(workflow::Handler handler, std::string_view queue,
                          const std::filesystem::path& plugin, const workflow::HandlerOptions& options) {
  Insert(Registration{std::string(queue), std::move(handler), options, plugin, false});
}

void HandlerRegistry::AddBuiltin(workflow::Handler handler, std::string_view queue) {
  Insert(Registration{std::string(queue), std::move(handler), {}, "workflowd (built in)", true});
}

void HandlerRegistry::Insert(Registration&& registration) {
  auto position = LowerBound(registrations_, registration.queue);
  if (position != registrations_.end() && position->queue == registration.queue) {
    throw workflow::RegistrationError(DuplicateMessage(*position, registration.handler, registration.plugin));
  }
  registrations_.insert(position, std::move(registration));
}

const Registration* HandlerRegistry::Find(std::string_view queue) const {
  auto position = LowerBound(registrations_, queue);
  if (position == registrations_.end() || position->queue != queue) return nullptr;
  return &*position;
}

std::string HandlerRegistry::Table() const {
  using Row = std::array<std::string, 3>;
  std::vector<Row> rows{{"QUEUE", "HANDLER", "PLUGIN"}};
  for (const Registration& registration : registrations_) {
    rows.push_back(
        {registration.queue, registration.handler.name, registration.plugin.filename().string()});
  }
  std::array<std::size_t, 2> widths{};  // the last column is not padded
  for (const Row& row : rows) {
    for (std::size_t column = 0; column < widths.size(); ++column) {
      widths[column] = std::max(widths[column], row[column].size());
    }
  }
  constexpr std::size_t kGap = 2;
  std::string table;
  for (const Row& row : rows) {
    for (std::size_t column = 0; column < widths.size(); ++column) {
      table += row[column];
      table.append(widths[column] - row[column].size() + kGap, ' ');
    }
    table += row.back();
    table += '\n';
  }
  return table;
}

}  // namespace workflowd
