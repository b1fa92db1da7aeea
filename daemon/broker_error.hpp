#pragma once

#include <stdexcept>

namespace workflowd {

// The connection to the broker failed or the broker closed it. The connection is unusable
// afterwards; the daemon reconnects.
class BrokerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace workflowd
