#include "journal_sink.hpp"

// The entry's code location would be this file, which tells a reader nothing.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <syslog.h>

#include <cstdio>
#include <cstring>
#include <string_view>

#include "log_context.hpp"

namespace workflowd {
namespace {

constexpr std::string_view kPriorities[] = {
    "PRIORITY=7",  // trace
    "PRIORITY=7",  // debug
    "PRIORITY=6",  // info
    "PRIORITY=4",  // warn
    "PRIORITY=3",  // err
    "PRIORITY=2",  // critical
    "PRIORITY=6",  // off
};
static_assert(LOG_DEBUG == 7 && LOG_INFO == 6 && LOG_WARNING == 4 && LOG_ERR == 3 && LOG_CRIT == 2);

iovec Field(std::string_view text) { return iovec{const_cast<char*>(text.data()), text.size()}; }

}  // namespace

JournalSink::JournalSink(std::string identifier, JournalSend send)
    : identifier_("SYSLOG_IDENTIFIER=" + identifier),
      send_(send ? std::move(send) : JournalSend(&sd_journal_sendv)) {}

void JournalSink::sink_it_(const spdlog::details::log_msg& message) {
  const std::string_view text(message.payload.data(), message.payload.size());
  std::array<iovec, 3 + 4> iov;
  int count = 0;
  iov[count++] = Field(kPriorities[static_cast<std::size_t>(message.level)]);
  iov[count++] = Field(identifier_);
  std::size_t used = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    std::string& field = fields_[used++];
    field.assign(name);
    field += '=';
    field.append(value);
    iov[count++] = Field(field);
  };
  add("MESSAGE", text);
  if (const LogContext* context = CurrentLogContext()) {
    const std::pair<std::string_view, std::string_view> known[] = {
        {"WORKFLOW_INCIDENT", context->incident},
        {"WORKFLOW_MESSAGE_ID", context->message_id},
        {"WORKFLOW_HANDLER", context->handler},
        {"WORKFLOW_QUEUE", context->queue},
    };
    for (const auto& [name, value] : known) {
      if (!value.empty()) add(name, value);
    }
  }
  if (const int sent = send_(iov.data(), count); sent < 0) {
    std::fprintf(stderr, "workflowd: the journal refused a line (%s): %.*s\n", std::strerror(-sent),
                 static_cast<int>(text.size()), text.data());
  }
}

}  // namespace workflowd
