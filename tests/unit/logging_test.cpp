#include "logging.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

using workflowd::IsJournalStream;

namespace {

// An open temporary file, closed on scope exit.
class OpenFile {
 public:
  OpenFile() : file_(std::tmpfile()) { REQUIRE(file_ != nullptr); }
  ~OpenFile() { std::fclose(file_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int fd() const { return fileno(file_); }
  // "device:inode", as systemd writes JOURNAL_STREAM.
  std::string JournalStream() const {
    struct stat status;
    REQUIRE(fstat(fd(), &status) == 0);
    return std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
  }

 private:
  std::FILE* file_;
};

}  // namespace

TEST_CASE("IsJournalStream is true only for the file JOURNAL_STREAM names", "[logging]") {
  const OpenFile journal;
  const OpenFile other;
  const std::string value = journal.JournalStream();
  CHECK(IsJournalStream(value.c_str(), journal.fd()));
  // The service's command redirected stderr: the variable is inherited, the file differs.
  CHECK_FALSE(IsJournalStream(value.c_str(), other.fd()));
  CHECK_FALSE(IsJournalStream(nullptr, journal.fd()));
  // A closed descriptor cannot be the journal.
  CHECK_FALSE(IsJournalStream(value.c_str(), -1));
}

TEST_CASE("IsJournalStream refuses a malformed JOURNAL_STREAM", "[logging]") {
  const OpenFile journal;
  const std::string value = journal.JournalStream();
  const std::string device = value.substr(0, value.find(':'));
  const std::string inode = value.substr(value.find(':') + 1);
  for (const std::string& bad : {std::string(), std::string(":"), device, device + ":", ":" + inode,
                                 device + ":" + inode + "x", " " + value, device + ":-" + inode,
                                 device + ":" + inode + ":1", device + ":99999999999999999999999"}) {
    INFO("JOURNAL_STREAM=" << bad);
    CHECK_FALSE(IsJournalStream(bad.c_str(), journal.fd()));
  }
}
