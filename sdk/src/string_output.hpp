#pragma once

#include <string>

namespace workflow::detail {

// A RapidJSON output stream that appends to a std::string, so serialising needs no
// intermediate buffer and no second copy.
struct StringOutput {
  using Ch = char;
  std::string& target;
  void Put(char c) { target.push_back(c); }
  void Flush() {}
};

}  // namespace workflow::detail
