#include "journal_sink.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "log_context.hpp"

using workflowd::CurrentLogContext;
using workflowd::JournalSink;
using workflowd::LogContext;
using workflowd::LogScope;

namespace {

using Entry = std::vector<std::string>;  // "FIELD=value", in the order sent

// A logger on a JournalSink whose send function keeps what it is handed.
struct CapturingJournal {
  std::vector<Entry> entries;
  int result = 0;  // what send returns
  std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>(
      "test", std::make_shared<JournalSink>("workflowd-test", [this](const iovec* fields, int count) {
        Entry entry;
        for (int i = 0; i < count; ++i) {
          entry.emplace_back(static_cast<const char*>(fields[i].iov_base), fields[i].iov_len);
        }
        entries.push_back(std::move(entry));
        return result;
      }));

  CapturingJournal() { logger->set_level(spdlog::level::trace); }
};

}  // namespace

TEST_CASE("outside a handler an entry has priority, identifier and message only", "[journal]") {
  CapturingJournal journal;
  journal.logger->info("connected to {}", "127.0.0.1:5672");
  journal.logger->error("lost");
  REQUIRE(journal.entries.size() == 2);
  CHECK(journal.entries[0] ==
        Entry{"PRIORITY=6", "SYSLOG_IDENTIFIER=workflowd-test", "MESSAGE=connected to 127.0.0.1:5672"});
  CHECK(journal.entries[1] == Entry{"PRIORITY=3", "SYSLOG_IDENTIFIER=workflowd-test", "MESSAGE=lost"});
}

TEST_CASE("each level maps to its syslog priority", "[journal]") {
  CapturingJournal journal;
  journal.logger->trace("t");
  journal.logger->debug("d");
  journal.logger->info("i");
  journal.logger->warn("w");
  journal.logger->error("e");
  journal.logger->critical("c");
  std::vector<std::string> priorities;
  for (const Entry& entry : journal.entries) priorities.push_back(entry.at(0));
  CHECK(priorities == std::vector<std::string>{"PRIORITY=7", "PRIORITY=7", "PRIORITY=6", "PRIORITY=4",
                                               "PRIORITY=3", "PRIORITY=2"});
}

TEST_CASE("inside a LogScope an entry carries the handler's context as fields", "[journal]") {
  CapturingJournal journal;
  const std::string incident = "0b8e4c5e-7d3a-4c1f-9a51-2f7f0c6d1e11";
  {
    const LogScope scope({incident, "m-1", "A_handler", "A_queue"});
    journal.logger->warn("slow");
  }
  journal.logger->info("after");
  REQUIRE(journal.entries.size() == 2);
  CHECK(journal.entries[0] == Entry{"PRIORITY=4", "SYSLOG_IDENTIFIER=workflowd-test", "MESSAGE=slow",
                                    "WORKFLOW_INCIDENT=" + incident, "WORKFLOW_MESSAGE_ID=m-1",
                                    "WORKFLOW_HANDLER=A_handler", "WORKFLOW_QUEUE=A_queue"});
  CHECK(journal.entries[1].size() == 3);
}

TEST_CASE("empty context fields are left out, and a multi-line message stays one field", "[journal]") {
  CapturingJournal journal;
  const LogScope scope({"", "", "B_handler", "B_queue"});
  journal.logger->info("line one\nline two");
  REQUIRE(journal.entries.size() == 1);
  CHECK(journal.entries[0] == Entry{"PRIORITY=6", "SYSLOG_IDENTIFIER=workflowd-test",
                                    "MESSAGE=line one\nline two", "WORKFLOW_HANDLER=B_handler",
                                    "WORKFLOW_QUEUE=B_queue"});
}

TEST_CASE("a journal that refuses an entry does not stop logging", "[journal]") {
  CapturingJournal journal;
  journal.result = -EAGAIN;
  journal.logger->error("first");
  journal.result = 0;
  journal.logger->error("second");
  REQUIRE(journal.entries.size() == 2);
  CHECK(journal.entries[1].at(2) == "MESSAGE=second");
}

TEST_CASE("LogScope nests and restores the context before it", "[journal]") {
  CHECK(CurrentLogContext() == nullptr);
  {
    const LogScope outer({"i-1", "m-1", "outer", "q-outer"});
    REQUIRE(CurrentLogContext() != nullptr);
    CHECK(CurrentLogContext()->handler == "outer");
    {
      const LogScope inner({"i-2", "m-2", "inner", "q-inner"});
      CHECK(CurrentLogContext()->handler == "inner");
      CHECK(CurrentLogContext()->incident == "i-2");
    }
    CHECK(CurrentLogContext()->handler == "outer");
    // Each thread has its own: another worker's lines are not about this handler.
    const LogContext* elsewhere = &*CurrentLogContext();
    std::thread([&] { elsewhere = CurrentLogContext(); }).join();
    CHECK(elsewhere == nullptr);
  }
  CHECK(CurrentLogContext() == nullptr);
}
