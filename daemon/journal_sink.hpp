#pragma once

#include <sys/uio.h>

#include <array>
#include <functional>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>

namespace workflowd {

// Hands one journal entry over: sd_journal_sendv's signature and result (0, or -errno).
using JournalSend = std::function<int(const iovec* fields, int count)>;

// An spdlog sink that writes each line to the systemd journal as structured fields: PRIORITY,
// MESSAGE, SYSLOG_IDENTIFIER, and, while a worker runs a handler (see log_context.hpp),
// WORKFLOW_INCIDENT, WORKFLOW_MESSAGE_ID, WORKFLOW_HANDLER and WORKFLOW_QUEUE. spdlog's own
// systemd_sink (1.10, Debian 12) carries no fields of the caller's, hence this one. A line
// the journal refuses goes to stderr instead.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // send defaults to libsystemd's sd_journal_sendv; tests pass their own.
  explicit JournalSink(std::string identifier, JournalSend send = {});

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override;
  void flush_() override {}

 private:
  std::string identifier_;  // SYSLOG_IDENTIFIER=...
  JournalSend send_;
  // "FIELD=value" texts, reused from line to line (the base sink's lock guards them).
  std::array<std::string, 5> fields_;  // MESSAGE and the four WORKFLOW_ fields
};

}  // namespace workflowd
