#pragma once

#include "settings.hpp"

namespace workflowd {

// Routes spdlog's default logger to the systemd journal, with structured fields, when stderr
// is the journal (see IsJournalStream); otherwise to stderr as "time level [thread] text".
// Call once, early.
void SetUpLogging(LogLevel level);
void SetLogLevel(LogLevel level);

// Whether fd is the stream that systemd connected to the journal: $JOURNAL_STREAM, as
// journal_stream, names its "device:inode" (systemd.exec(5)). False for a null or malformed
// value, and when fd is another file (stderr redirected by the service's own command).
bool IsJournalStream(const char* journal_stream, int fd);

}  // namespace workflowd
