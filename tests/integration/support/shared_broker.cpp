#include "shared_broker.hpp"

#include <stdexcept>

namespace workflowd::testing {

BrokerNode& SharedBroker() {
  // Constructed on first use and destroyed by exit(), which stops the node.
  static BrokerNode node;
  // A start that failed fails every later test the same way, without another long wait.
  static std::string start_error;
  if (!start_error.empty()) {
    throw std::runtime_error("the shared broker did not start: " + start_error);
  }
  if (!node.IsRunning()) {
    try {
      node.Start();
    } catch (const std::exception& error) {
      start_error = error.what();
      throw;
    }
  }
  return node;
}

std::string UniqueVhost(std::string_view prefix) {
  static int counter = 0;
  std::string name = std::string(prefix) + "-" + std::to_string(++counter);
  SharedBroker().AddVhost(name);
  return name;
}

}  // namespace workflowd::testing
