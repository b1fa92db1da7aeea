#pragma once

#include <stdexcept>

namespace workflowd {

// A command line the program refuses: printed with the command's name, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace workflowd
