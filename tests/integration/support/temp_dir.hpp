#pragma once

#include <filesystem>
#include <string_view>

namespace workflowd::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  // The directory is named "<prefix>-XXXXXX".
  explicit TempDir(std::string_view prefix);
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace workflowd::testing
