#pragma once

#include <chrono>
#include <stdexcept>

namespace workflowd {

// Thrown by a built-in stage whose message cannot be handled yet: the delivery waits in a delay
// queue and comes back, instead of being requeued at once.
class RetryLater : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace workflowd
