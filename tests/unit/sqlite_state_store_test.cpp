#include "sqlite_state_store.hpp"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Catch::Contains;
using workflowd::Incident;
using workflowd::IncidentFilter;
using workflowd::IncidentStatus;
using workflowd::MessageEvent;
using workflowd::MessageRecord;
using workflowd::MessageStatus;
using workflowd::OpenSqliteStateStore;
using workflowd::StateStore;
using workflowd::StateStoreError;

namespace {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir : public workflowd::testing::TempDir {
 public:
  TempDir() : workflowd::testing::TempDir("workflowd-store-test") {}
  fs::path db() const { return path() / "state.db"; }
};

// A plain connection beside the store's, to prepare files by hand and look at what it wrote.
class RawDatabase {
 public:
  explicit RawDatabase(const fs::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db_));
    sqlite3_busy_timeout(db_, 5000);
  }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;
  ~RawDatabase() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string text = error;
      sqlite3_free(error);
      throw std::runtime_error(text + " in: " + sql);
    }
  }
  std::string Text(const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sqlite3_errmsg(db_));
    }
    std::string value;
    if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_text(statement, 0) != nullptr) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    }
    sqlite3_finalize(statement);
    return value;
  }
  int UserVersion() { return std::stoi(Text("PRAGMA user_version")); }

 private:
  sqlite3* db_ = nullptr;
};

MessageEvent Event(std::string message_id, MessageStatus status, std::int64_t at, std::string incident_id = "i1") {
  MessageEvent event;
  event.message_id = std::move(message_id);
  event.incident_id = std::move(incident_id);
  event.status = status;
  event.at = at;
  return event;
}

// A SENT event with the description a sender writes.
MessageEvent Sent(std::string message_id, std::int64_t at, std::string incident_id = "i1") {
  MessageEvent event = Event(std::move(message_id), MessageStatus::kSent, at, std::move(incident_id));
  event.originator = "init_stage";
  event.destination = "simulation";
  event.src_tag = "src";
  event.dest_tag = "dest";
  event.body_prefix = R"({"IncidentID":"i1"})";
  return event;
}

MessageEvent Processing(std::string message_id, std::int64_t at, std::string consumer) {
  MessageEvent event = Event(std::move(message_id), MessageStatus::kProcessing, at);
  event.consumer = std::move(consumer);
  return event;
}

MessageRecord OnlyMessage(StateStore& store, const std::string& incident_id = "i1") {
  const std::vector<MessageRecord> log = store.MessageLog(incident_id);
  REQUIRE(log.size() == 1);
  return log.front();
}

constexpr IncidentStatus kAllIncidentStatuses[] = {IncidentStatus::kPending, IncidentStatus::kActive,
                                                   IncidentStatus::kComplete, IncidentStatus::kCancelled,
                                                   IncidentStatus::kError};

// The header's rule: only PENDING and ACTIVE incidents move; ACTIVE only from PENDING.
bool Allowed(IncidentStatus from, IncidentStatus to) {
  if (to == IncidentStatus::kPending) return false;
  if (from == IncidentStatus::kPending) return true;
  return from == IncidentStatus::kActive && to != IncidentStatus::kActive;
}

// A new incident brought to status by allowed transitions.
Incident IncidentIn(StateStore& store, IncidentStatus status) {
  Incident incident = store.CreateIncident("kind", "name", "created");
  if (status != IncidentStatus::kPending) REQUIRE(store.TransitionIncident(incident.id, status, "setup"));
  return *store.FindIncident(incident.id);
}

}  // namespace

TEST_CASE("status names are the upper-case names of the log", "[state]") {
  using workflowd::IsEnded;
  using workflowd::ParseIncidentStatus;
  using workflowd::ToString;
  CHECK(ToString(IncidentStatus::kPending) == "PENDING");
  CHECK(ToString(IncidentStatus::kActive) == "ACTIVE");
  CHECK(ToString(IncidentStatus::kComplete) == "COMPLETE");
  CHECK(ToString(IncidentStatus::kCancelled) == "CANCELLED");
  CHECK(ToString(IncidentStatus::kError) == "ERROR");
  CHECK(ToString(MessageStatus::kSent) == "SENT");
  CHECK(ToString(MessageStatus::kProcessing) == "PROCESSING");
  CHECK(ToString(MessageStatus::kComplete) == "COMPLETE");
  CHECK(ToString(MessageStatus::kError) == "ERROR");
  CHECK(ToString(MessageStatus::kNotProcessed) == "NOT_PROCESSED");
  for (const IncidentStatus status : kAllIncidentStatuses) {
    CHECK(ParseIncidentStatus(ToString(status)) == status);
  }
  CHECK_FALSE(ParseIncidentStatus("active"));
  CHECK_FALSE(ParseIncidentStatus(""));
  CHECK_FALSE(IsEnded(IncidentStatus::kPending));
  CHECK_FALSE(IsEnded(IncidentStatus::kActive));
  CHECK(IsEnded(IncidentStatus::kComplete));
  CHECK(IsEnded(IncidentStatus::kCancelled));
  CHECK(IsEnded(IncidentStatus::kError));
}

TEST_CASE("a new incident is PENDING, with a UUID v4, and can be found", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const Incident created = store->CreateIncident("fire", "Etna 2024", "from the test");
  CHECK(std::regex_match(created.id,
                         std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  CHECK(created.status == IncidentStatus::kPending);
  CHECK(created.created_at > 0);
  CHECK(created.updated_at == created.created_at);
  CHECK(store->CreateIncident("fire", "another").id != created.id);

  const auto found = store->FindIncident(created.id);
  REQUIRE(found);
  CHECK(found->id == created.id);
  CHECK(found->kind == "fire");
  CHECK(found->name == "Etna 2024");
  CHECK(found->status == IncidentStatus::kPending);
  CHECK(found->comment == "from the test");
  CHECK(found->created_at == created.created_at);
  CHECK(found->updated_at == created.updated_at);

  CHECK_FALSE(store->FindIncident("no-such-incident"));
  CHECK(store->CreateIncident("fire", "no comment").comment.empty());
}

TEST_CASE("incident transitions follow the rule, and a refused one changes nothing", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  for (const IncidentStatus from : kAllIncidentStatuses) {
    for (const IncidentStatus to : kAllIncidentStatuses) {
      CAPTURE(workflowd::ToString(from), workflowd::ToString(to));
      const Incident before = IncidentIn(*store, from);
      const bool allowed = Allowed(from, to);
      CHECK(store->TransitionIncident(before.id, to, "moved") == allowed);
      const Incident after = *store->FindIncident(before.id);
      if (allowed) {
        CHECK(after.status == to);
        CHECK(after.comment == "moved");
        CHECK(after.updated_at >= before.updated_at);
      } else {
        CHECK(after.status == before.status);
        CHECK(after.comment == before.comment);
        CHECK(after.updated_at == before.updated_at);
      }
    }
  }
  CHECK_FALSE(store->TransitionIncident("no-such-incident", IncidentStatus::kActive));
  CHECK_FALSE(store->TransitionIncident("no-such-incident", IncidentStatus::kCancelled, "why"));
  CHECK_FALSE(store->FindIncident("no-such-incident"));
}

TEST_CASE("a transition without a comment keeps the incident's comment", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const Incident incident = store->CreateIncident("fire", "Etna", "started by the operator");
  REQUIRE(store->TransitionIncident(incident.id, IncidentStatus::kActive));
  CHECK(store->FindIncident(incident.id)->comment == "started by the operator");
  REQUIRE(store->TransitionIncident(incident.id, IncidentStatus::kCancelled, "stopped by the operator"));
  CHECK(store->FindIncident(incident.id)->comment == "stopped by the operator");
}

TEST_CASE("incidents are listed newest first, filtered by status and kind, up to the limit", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const Incident fire1 = store->CreateIncident("fire", "first");
  const Incident flood = store->CreateIncident("flood", "second");
  const Incident fire2 = store->CreateIncident("fire", "third");
  const Incident fire3 = store->CreateIncident("fire", "fourth");
  REQUIRE(store->TransitionIncident(fire2.id, IncidentStatus::kActive));
  REQUIRE(store->TransitionIncident(flood.id, IncidentStatus::kActive));
  REQUIRE(store->TransitionIncident(fire3.id, IncidentStatus::kComplete));

  using Ids = std::vector<std::string>;
  const auto ids = [&store](std::optional<IncidentStatus> status, std::optional<std::string> kind,
                            std::size_t limit = 100) {
    IncidentFilter filter;
    filter.status = status;
    filter.kind = std::move(kind);
    filter.limit = limit;
    Ids result;
    for (const Incident& incident : store->ListIncidents(filter)) result.push_back(incident.id);
    return result;
  };
  const auto any = std::nullopt;
  CHECK(ids(any, any) == Ids{fire3.id, fire2.id, flood.id, fire1.id});
  CHECK(ids(IncidentStatus::kActive, any) == Ids{fire2.id, flood.id});
  CHECK(ids(any, "fire") == Ids{fire3.id, fire2.id, fire1.id});
  CHECK(ids(IncidentStatus::kActive, "fire") == Ids{fire2.id});
  CHECK(ids(IncidentStatus::kError, any).empty());
  CHECK(ids(any, "earthquake").empty());
  CHECK(ids(any, any, 2) == Ids{fire3.id, fire2.id});
  CHECK(ids(any, any, 0).empty());

  IncidentFilter complete;
  complete.status = IncidentStatus::kComplete;
  const std::vector<Incident> listed = store->ListIncidents(complete);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].kind == "fire");
  CHECK(listed[0].name == "fourth");
  CHECK(listed[0].created_at == fire3.created_at);
}

TEST_CASE("message events in order give the message's whole life", "[state][messages]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const MessageEvent sent = Sent("m1", 100);
  store->RecordMessages({&sent, 1});
  MessageRecord record = OnlyMessage(*store);
  CHECK(record.message_id == "m1");
  CHECK(record.incident_id == "i1");
  CHECK(record.status == MessageStatus::kSent);
  CHECK(record.originator == "init_stage");
  CHECK(record.destination == "simulation");
  CHECK(record.src_tag == "src");
  CHECK(record.dest_tag == "dest");
  CHECK(record.body_prefix == R"({"IncidentID":"i1"})");
  CHECK(record.sent_at == 100);
  CHECK_FALSE(record.processing_at);
  CHECK_FALSE(record.finished_at);
  CHECK(store->CountInFlight("i1") == 1);

  const MessageEvent processing = Processing("m1", 200, "host-a/simulation");
  store->RecordMessages({&processing, 1});
  record = OnlyMessage(*store);
  CHECK(record.status == MessageStatus::kProcessing);
  CHECK(record.consumer == "host-a/simulation");
  CHECK(record.sent_at == 100);
  CHECK(record.processing_at == 200);
  CHECK(store->CountInFlight("i1") == 1);

  const MessageEvent complete = Event("m1", MessageStatus::kComplete, 300);
  store->RecordMessages({&complete, 1});
  record = OnlyMessage(*store);
  CHECK(record.status == MessageStatus::kComplete);
  CHECK(record.originator == "init_stage");
  CHECK(record.consumer == "host-a/simulation");
  CHECK(record.sent_at == 100);
  CHECK(record.processing_at == 200);
  CHECK(record.finished_at == 300);
  CHECK(store->CountInFlight("i1") == 0);
}

TEST_CASE("a handler's ERROR and a refusal's NOT_PROCESSED keep their reason", "[state][messages]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  MessageEvent error = Event("m1", MessageStatus::kError, 300);
  error.comment = "std::runtime_error: no input file";
  MessageEvent refused = Event("m2", MessageStatus::kNotProcessed, 400, "unknown-incident");
  refused.comment = "incident unknown-incident is unknown";
  const std::vector<MessageEvent> events{Sent("m1", 100), Processing("m1", 200, "a"), error, refused};
  store->RecordMessages(events);

  MessageRecord record = OnlyMessage(*store);
  CHECK(record.status == MessageStatus::kError);
  CHECK(record.comment == "std::runtime_error: no input file");
  CHECK(record.finished_at == 300);

  record = OnlyMessage(*store, "unknown-incident");
  CHECK(record.status == MessageStatus::kNotProcessed);
  CHECK(record.comment == "incident unknown-incident is unknown");
  CHECK(record.finished_at == 400);
  CHECK_FALSE(record.sent_at);
}

TEST_CASE("message events out of order never move a message back", "[state][messages]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());

  SECTION("the sender's SENT after the receiver's PROCESSING fills in the description") {
    const MessageEvent processing = Processing("m1", 200, "host-b/simulation");
    store->RecordMessages({&processing, 1});
    const MessageEvent sent = Sent("m1", 100);
    store->RecordMessages({&sent, 1});
    const MessageRecord record = OnlyMessage(*store);
    CHECK(record.status == MessageStatus::kProcessing);
    CHECK(record.originator == "init_stage");
    CHECK(record.destination == "simulation");
    CHECK(record.src_tag == "src");
    CHECK(record.dest_tag == "dest");
    CHECK(record.consumer == "host-b/simulation");
    CHECK(record.sent_at == 100);
    CHECK(record.processing_at == 200);
    CHECK_FALSE(record.finished_at);
  }

  SECTION("COMPLETE before PROCESSING stays COMPLETE and still gets the processing time") {
    const std::vector<MessageEvent> events{Event("m1", MessageStatus::kComplete, 300), Sent("m1", 100),
                                           Processing("m1", 200, "host-b/simulation")};
    store->RecordMessages(events);
    const MessageRecord record = OnlyMessage(*store);
    CHECK(record.status == MessageStatus::kComplete);
    CHECK(record.originator == "init_stage");
    CHECK(record.consumer == "host-b/simulation");
    CHECK(record.sent_at == 100);
    CHECK(record.processing_at == 200);
    CHECK(record.finished_at == 300);
    CHECK(store->CountInFlight("i1") == 0);
  }

  SECTION("a duplicate delivery's second PROCESSING after COMPLETE does not reopen it") {
    const std::vector<MessageEvent> first{Sent("m1", 100), Processing("m1", 200, "host-a/simulation"),
                                          Event("m1", MessageStatus::kComplete, 300)};
    store->RecordMessages(first);
    const MessageEvent again = Processing("m1", 400, "host-b/simulation");
    store->RecordMessages({&again, 1});
    const MessageRecord record = OnlyMessage(*store);
    CHECK(record.status == MessageStatus::kComplete);
    CHECK(record.consumer == "host-a/simulation");
    CHECK(record.processing_at == 200);
    CHECK(record.finished_at == 300);
    CHECK(store->CountInFlight("i1") == 0);
  }

  SECTION("a final status is never replaced by another") {
    MessageEvent error = Event("m1", MessageStatus::kError, 400);
    error.comment = "late duplicate failed";
    const std::vector<MessageEvent> events{Sent("m1", 100), Event("m1", MessageStatus::kComplete, 300), error};
    store->RecordMessages(events);
    const MessageRecord record = OnlyMessage(*store);
    CHECK(record.status == MessageStatus::kComplete);
    CHECK(record.comment.empty());
    CHECK(record.finished_at == 300);
  }
}

// The store folds a batch into one row per message before writing: whatever the order and the
// batching, the table must end as if every event had been written on its own.
TEST_CASE("a batch of events leaves the same log as the events written one by one", "[state][messages]") {
  constexpr MessageStatus kStatuses[] = {MessageStatus::kSent, MessageStatus::kProcessing, MessageStatus::kComplete,
                                         MessageStatus::kError, MessageStatus::kNotProcessed};
  std::mt19937 random(20261204);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<MessageEvent> events;
    for (int i = 0; i < 12; ++i) {
      const std::string id = "m" + std::to_string(random() % 4);
      const MessageStatus status = kStatuses[random() % std::size(kStatuses)];
      MessageEvent event = status == MessageStatus::kSent ? Sent(id, 100 + i) : Event(id, status, 100 + i);
      if (random() % 2 == 0) event.consumer = "host-" + std::to_string(i);
      if (random() % 2 == 0) event.comment = "comment " + std::to_string(i);
      events.push_back(std::move(event));
    }
    TempDir one_by_one_dir;
    TempDir batched_dir;
    auto one_by_one = OpenSqliteStateStore(one_by_one_dir.db());
    auto batched = OpenSqliteStateStore(batched_dir.db());
    for (const MessageEvent& event : events) one_by_one->RecordMessages({&event, 1});
    // Two batches, split at a random point, so that folded rows also merge into stored ones.
    const auto split = static_cast<std::ptrdiff_t>(random() % (events.size() + 1));
    batched->RecordMessages({events.data(), static_cast<std::size_t>(split)});
    batched->RecordMessages({events.data() + split, events.size() - static_cast<std::size_t>(split)});

    auto by_id = [](std::vector<MessageRecord> log) {
      std::sort(log.begin(), log.end(), [](const auto& a, const auto& b) { return a.message_id < b.message_id; });
      return log;
    };
    const std::vector<MessageRecord> expected = by_id(one_by_one->MessageLog("i1"));
    const std::vector<MessageRecord> actual = by_id(batched->MessageLog("i1"));
    INFO("trial " << trial << ", split at " << split);
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      INFO("message " << expected[i].message_id);
      CHECK(actual[i].status == expected[i].status);
      CHECK(actual[i].comment == expected[i].comment);
      CHECK(actual[i].originator == expected[i].originator);
      CHECK(actual[i].consumer == expected[i].consumer);
      CHECK(actual[i].body_prefix == expected[i].body_prefix);
      CHECK(actual[i].sent_at == expected[i].sent_at);
      CHECK(actual[i].processing_at == expected[i].processing_at);
      CHECK(actual[i].finished_at == expected[i].finished_at);
    }
    CHECK(batched->CountInFlight("i1") == one_by_one->CountInFlight("i1"));
  }
}

TEST_CASE("a PROCESSING event alone creates the row of a producer that writes none", "[state][messages]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  MessageEvent processing = Processing("m-from-python", 200, "host-a/simulation");
  processing.originator = "vestec_producer";
  processing.destination = "simulation";
  processing.body_prefix = R"({"IncidentID":"i1","x":1})";
  store->RecordMessages({&processing, 1});
  const MessageRecord record = OnlyMessage(*store);
  CHECK(record.message_id == "m-from-python");
  CHECK(record.incident_id == "i1");
  CHECK(record.status == MessageStatus::kProcessing);
  CHECK(record.originator == "vestec_producer");
  CHECK(record.destination == "simulation");
  CHECK(record.body_prefix == R"({"IncidentID":"i1","x":1})");
  CHECK(record.consumer == "host-a/simulation");
  CHECK_FALSE(record.sent_at);
  CHECK(record.processing_at == 200);
  CHECK(store->CountInFlight("i1") == 1);
}

TEST_CASE("the message log is one incident's, oldest first, and counts what is in flight", "[state][messages]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const std::vector<MessageEvent> events{
      Sent("late", 500),       Sent("early", 100),
      Sent("middle", 300),     Sent("elsewhere", 200, "i2"),
      Processing("middle", 350, "a"),
      Event("early", MessageStatus::kComplete, 150),
      Processing("received-only", 400, "a"),  // between middle (300) and late (500)
  };
  store->RecordMessages(events);
  std::vector<std::string> ids;
  for (const MessageRecord& record : store->MessageLog("i1")) ids.push_back(record.message_id);
  CHECK(ids == std::vector<std::string>{"early", "middle", "received-only", "late"});
  CHECK(store->CountInFlight("i1") == 3);
  CHECK(store->CountInFlight("i2") == 1);
  CHECK(store->CountInFlight("i3") == 0);
  CHECK(store->MessageLog("i3").empty());

  store->RecordMessages({});
  CHECK(store->MessageLog("i1").size() == 4);
}

TEST_CASE("persisted records come back in the order they were put", "[state][persist]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  store->PersistPut("i1", "simulation", R"({"n":1})");
  store->PersistPut("i1", "results", R"({"r":1})");
  store->PersistPut("i1", "simulation", R"({"n":2})");
  store->PersistPut("i2", "simulation", R"({"other":true})");
  store->PersistPut("i1", "results", R"({"r":2})");
  store->PersistPut("i1", "simulation", R"({"n":3})");

  using Records = std::vector<std::string>;
  CHECK(store->PersistGet("i1", "simulation") == Records{R"({"n":1})", R"({"n":2})", R"({"n":3})"});
  CHECK(store->PersistGet("i1", "results") == Records{R"({"r":1})", R"({"r":2})"});
  CHECK(store->PersistGet("i2", "simulation") == Records{R"({"other":true})"});
  CHECK(store->PersistGetAll("i1") ==
        Records{R"({"n":1})", R"({"r":1})", R"({"n":2})", R"({"r":2})", R"({"n":3})"});
  CHECK(store->PersistGet("i1", "nobody").empty());
  CHECK(store->PersistGetAll("i3").empty());
}

TEST_CASE("a lease is taken, renewed by its owner, refused to others and released", "[state][lease]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  CHECK(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));
  CHECK(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));  // renewed
  CHECK_FALSE(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));
  // Other handlers and incidents have their own leases.
  CHECK(store->TryAcquireLease("i1", "other_stage", "daemon-b", 10s));
  CHECK(store->TryAcquireLease("i2", "atomic_stage", "daemon-b", 10s));

  store->ReleaseLease("i1", "atomic_stage", "daemon-b");  // not the owner: nothing happens
  CHECK_FALSE(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));

  store->ReleaseLease("i1", "atomic_stage", "daemon-a");
  CHECK(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));
  CHECK_FALSE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));
  store->ReleaseLease("i1", "atomic_stage", "nobody");  // a lease nobody holds: nothing happens
}

TEST_CASE("an expired lease goes to the next one who asks", "[state][lease]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  REQUIRE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 200ms));
  std::this_thread::sleep_for(300ms);  // daemon-a died holding it
  CHECK(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));
  CHECK_FALSE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));
}

TEST_CASE("a renewal runs from now, for the new duration", "[state][lease]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());

  SECTION("longer: the lease outlives its first end") {
    REQUIRE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 300ms));
    std::this_thread::sleep_for(200ms);
    REQUIRE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));
    std::this_thread::sleep_for(200ms);  // past the first end
    CHECK_FALSE(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));
  }

  SECTION("zero: the lease ends at once") {
    REQUIRE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 10s));
    REQUIRE(store->TryAcquireLease("i1", "atomic_stage", "daemon-a", 0ms));
    CHECK(store->TryAcquireLease("i1", "atomic_stage", "daemon-b", 10s));
  }
}

TEST_CASE("two stores on one file share incidents, records and leases", "[state][lease]") {
  TempDir dir;
  auto first = OpenSqliteStateStore(dir.db());
  auto second = OpenSqliteStateStore(dir.db());

  const Incident incident = first->CreateIncident("fire", "shared");
  REQUIRE(second->FindIncident(incident.id));
  CHECK(second->TransitionIncident(incident.id, IncidentStatus::kActive));
  CHECK_FALSE(first->TransitionIncident(incident.id, IncidentStatus::kActive));
  second->PersistPut(incident.id, "h", "{}");
  CHECK(first->PersistGet(incident.id, "h").size() == 1);

  CHECK(first->TryAcquireLease(incident.id, "h", "daemon-a", 10s));
  CHECK_FALSE(second->TryAcquireLease(incident.id, "h", "daemon-b", 10s));

  // Both race for the same free leases from two threads: each lease has exactly one winner.
  constexpr int kLeases = 200;
  std::atomic<bool> go = false;
  const auto race = [&go](StateStore& store, const std::string& owner) {
    while (!go) std::this_thread::yield();
    std::vector<char> won(kLeases);
    for (int i = 0; i < kLeases; ++i) won[i] = store.TryAcquireLease("i1", "h" + std::to_string(i), owner, 10s);
    return won;
  };
  auto a = std::async(std::launch::async, race, std::ref(*first), "daemon-a");
  auto b = std::async(std::launch::async, race, std::ref(*second), "daemon-b");
  go = true;
  const std::vector<char> first_won = a.get();
  const std::vector<char> second_won = b.get();
  for (int i = 0; i < kLeases; ++i) {
    CAPTURE(i);
    CHECK(first_won[i] + second_won[i] == 1);
  }
}

TEST_CASE("two processes racing for the same leases never both win one", "[state][lease]") {
  TempDir dir;
  OpenSqliteStateStore(dir.db());  // created before the race, as a daemon's start would
  constexpr int kLeases = 200;
  const auto race = [&dir](const std::string& owner) {
    auto store = OpenSqliteStateStore(dir.db());
    std::vector<char> won(kLeases);
    for (int i = 0; i < kLeases; ++i) won[i] = store->TryAcquireLease("i1", "h" + std::to_string(i), owner, 10s);
    return won;
  };

  int go[2], results[2];
  REQUIRE(pipe(go) == 0);
  REQUIRE(pipe(results) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int status = 1;
    try {
      char byte;
      if (read(go[0], &byte, 1) == 1) {
        const std::vector<char> won = race("child");
        if (write(results[1], won.data(), won.size()) == static_cast<ssize_t>(won.size())) status = 0;
      }
    } catch (...) {
      status = 2;
    }
    _exit(status);
  }
  close(go[0]);
  close(results[1]);
  REQUIRE(write(go[1], "g", 1) == 1);
  const std::vector<char> parent_won = race("parent");
  std::vector<char> child_won(kLeases);
  std::size_t got = 0;
  while (got < child_won.size()) {
    const ssize_t n = read(results[0], child_won.data() + got, child_won.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(go[1]);
  close(results[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(got == child_won.size());
  for (int i = 0; i < kLeases; ++i) {
    CAPTURE(i);
    CHECK(parent_won[i] + child_won[i] == 1);
  }
}

TEST_CASE("a writer waits for another process's transaction instead of failing", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  RawDatabase other(dir.db());
  other.Exec("BEGIN IMMEDIATE");
  auto commit_later = std::async(std::launch::async, [&other] {
    std::this_thread::sleep_for(300ms);
    other.Exec("COMMIT");
  });
  const auto start = std::chrono::steady_clock::now();
  store->PersistPut("i1", "h", "{}");
  const auto waited = std::chrono::steady_clock::now() - start;
  commit_later.get();
  CHECK(waited >= 250ms);
  CHECK(store->PersistGet("i1", "h").size() == 1);
}

TEST_CASE("deleting an incident's state removes its records and leases only", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const Incident incident = store->CreateIncident("fire", "ended");
  const MessageEvent sent = Sent("m1", 100, incident.id);
  store->RecordMessages({&sent, 1});
  store->PersistPut(incident.id, "a", "{}");
  store->PersistPut(incident.id, "b", "{}");
  store->PersistPut("other", "a", R"({"kept":true})");
  REQUIRE(store->TryAcquireLease(incident.id, "a", "daemon-a", 10s));
  REQUIRE(store->TryAcquireLease("other", "a", "daemon-a", 10s));
  REQUIRE(store->TransitionIncident(incident.id, IncidentStatus::kComplete));

  store->DeleteIncidentState(incident.id);
  CHECK(store->PersistGetAll(incident.id).empty());
  CHECK(store->TryAcquireLease(incident.id, "a", "daemon-b", 10s));
  CHECK(store->PersistGet("other", "a") == std::vector<std::string>{R"({"kept":true})"});
  CHECK_FALSE(store->TryAcquireLease("other", "a", "daemon-b", 10s));
  CHECK(store->FindIncident(incident.id)->status == IncidentStatus::kComplete);
  CHECK(store->MessageLog(incident.id).size() == 1);
}

TEST_CASE("unfinished deliveries are counted per queue and message, survive a crash, and are forgotten",
          "[state][deliveries]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  CHECK(store->CountUnfinishedDelivery("q", "m1") == 1);
  CHECK(store->CountUnfinishedDelivery("q", "m1") == 2);
  CHECK(store->CountUnfinishedDelivery("q", "m2") == 1);
  CHECK(store->CountUnfinishedDelivery("other", "m1") == 1);

  // A process that counts and dies at once, as a handler that crashes it, keeps the count.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto own = OpenSqliteStateStore(dir.db());
    own->CountUnfinishedDelivery("q", "m1");
    _exit(0);  // no destructors: the connection is never closed
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(store->CountUnfinishedDelivery("q", "m1") == 4);

  store->ForgetUnfinishedDeliveries("q", "m1");
  CHECK(store->CountUnfinishedDelivery("q", "m1") == 1);
  CHECK(store->CountUnfinishedDelivery("q", "m2") == 2);
  CHECK(store->CountUnfinishedDelivery("other", "m1") == 2);
  store->ForgetUnfinishedDeliveries("q", "never-counted");

  // A count left alone for longer than the expiry starts again.
  RawDatabase(dir.db())
      .Exec("UPDATE unfinished_deliveries SET updated_at = updated_at - " +
            std::to_string(StateStore::kUnfinishedDeliveryExpiry.count() + 1000) +
            " WHERE message_key = 'm2'");
  CHECK(store->CountUnfinishedDelivery("q", "m2") == 1);
  CHECK(store->CountUnfinishedDelivery("q", "m2") == 2);
  CHECK(store->CountUnfinishedDelivery("other", "m1") == 3);
}

TEST_CASE("expired counts of unfinished deliveries are dropped, not kept for ever", "[state][deliveries]") {
  TempDir dir;
  RawDatabase raw(dir.db());
  {
    auto store = OpenSqliteStateStore(dir.db());
    store->CountUnfinishedDelivery("q", "abandoned");
    store->CountUnfinishedDelivery("q", "recent");
  }
  // "abandoned" was refused and its dead letter purged: nothing will count or forget it again.
  raw.Exec("UPDATE unfinished_deliveries SET updated_at = updated_at - " +
           std::to_string(StateStore::kUnfinishedDeliveryExpiry.count() + 1000) +
           " WHERE message_key = 'abandoned'");
  REQUIRE(raw.Text("SELECT count(*) FROM unfinished_deliveries") == "2");

  auto store = OpenSqliteStateStore(dir.db());
  CHECK(store->CountUnfinishedDelivery("other", "m") == 1);
  CHECK(raw.Text("SELECT group_concat(message_key, ',') FROM (SELECT message_key FROM unfinished_deliveries "
                 "ORDER BY message_key)") == "m,recent");
  CHECK(store->CountUnfinishedDelivery("q", "recent") == 2);
}

TEST_CASE("the store creates its directory and uses WAL, and a reopened file keeps its data", "[state][open]") {
  TempDir dir;
  const fs::path file = dir.path() / "var" / "lib" / "workflowd" / "state.db";
  std::string id;
  {
    auto store = OpenSqliteStateStore(file);
    id = store->CreateIncident("fire", "kept").id;
  }
  CHECK(fs::is_regular_file(file));
  auto store = OpenSqliteStateStore(file);
  CHECK(store->FindIncident(id));
  RawDatabase raw(file);
  CHECK(raw.Text("PRAGMA journal_mode") == "wal");
}

TEST_CASE("an old schema is migrated on open and keeps its data", "[state][open]") {
  TempDir dir;
  int current = 0;
  {
    OpenSqliteStateStore(dir.path() / "fresh.db");
    current = RawDatabase(dir.path() / "fresh.db").UserVersion();
  }
  REQUIRE(current >= 2);

  {
    // Version 1 as released: incidents and messages, nothing else.
    RawDatabase v1(dir.db());
    v1.Exec(R"sql(
      CREATE TABLE incidents (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE messages (
        message_id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, status TEXT NOT NULL,
        originator TEXT NOT NULL DEFAULT '', destination TEXT NOT NULL DEFAULT '',
        src_tag TEXT NOT NULL DEFAULT '', dest_tag TEXT NOT NULL DEFAULT '',
        body_prefix TEXT NOT NULL DEFAULT '', consumer TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '', sent_at INTEGER, processing_at INTEGER, finished_at INTEGER);
      INSERT INTO incidents VALUES ('old-incident', 'fire', 'from v1', 'ACTIVE', 'old', 1000, 2000);
      INSERT INTO messages (message_id, incident_id, status, originator, sent_at)
        VALUES ('old-message', 'old-incident', 'SENT', 'init_stage', 1500);
      PRAGMA user_version = 1;
    )sql");
  }

  auto store = OpenSqliteStateStore(dir.db());
  const auto incident = store->FindIncident("old-incident");
  REQUIRE(incident);
  CHECK(incident->status == IncidentStatus::kActive);
  CHECK(incident->comment == "old");
  CHECK(incident->created_at == 1000);
  const MessageRecord message = OnlyMessage(*store, "old-incident");
  CHECK(message.message_id == "old-message");
  CHECK(message.originator == "init_stage");
  CHECK(message.sent_at == 1500);
  CHECK(store->CountInFlight("old-incident") == 1);

  store->PersistPut("old-incident", "h", "{}");
  CHECK(store->PersistGet("old-incident", "h").size() == 1);
  CHECK(store->TryAcquireLease("old-incident", "h", "daemon-a", 10s));

  RawDatabase raw(dir.db());
  CHECK(raw.UserVersion() == current);
  CHECK(raw.Text("SELECT count(*) FROM sqlite_master WHERE name = 'messages_by_incident_status'") == "1");
}

TEST_CASE("a file with a newer schema is refused, untouched, with the remedy", "[state][open]") {
  TempDir dir;
  OpenSqliteStateStore(dir.db());
  const int current = RawDatabase(dir.db()).UserVersion();
  RawDatabase(dir.db()).Exec("PRAGMA user_version = " + std::to_string(current + 1));

  CHECK_THROWS_WITH(OpenSqliteStateStore(dir.db()),
                    "state store " + dir.db().string() + ": its schema version " + std::to_string(current + 1) +
                        " is newer than this workflowd knows (" + std::to_string(current) +
                        "); upgrade workflowd to the release that wrote it");
  CHECK(RawDatabase(dir.db()).UserVersion() == current + 1);
}

TEST_CASE("a path that cannot hold the file is refused with the path and the reason", "[state][open]") {
  TempDir dir;

  SECTION("a parent that is a regular file") {
    std::ofstream(dir.path() / "not-a-dir") << "x";
    const fs::path file = dir.path() / "not-a-dir" / "sub" / "state.db";
    CHECK_THROWS_AS(OpenSqliteStateStore(file), StateStoreError);
    CHECK_THROWS_WITH(OpenSqliteStateStore(file), "state store " + file.string() +
                                                      ": cannot create the directory " +
                                                      file.parent_path().string() + ": Not a directory");
  }

  SECTION("a directory where the file should be") {
    const fs::path file = dir.path() / "state.db";
    fs::create_directory(file);
    CHECK_THROWS_WITH(OpenSqliteStateStore(file),
                      Contains("state store " + file.string() + ": cannot ") && Contains("unable to open"));
  }
}

TEST_CASE("a file that is not a database is refused, untouched", "[state][open]") {
  TempDir dir;
  const std::string garbage(4096, 'x');
  std::ofstream(dir.db(), std::ios::binary) << garbage;
  CHECK_THROWS_WITH(OpenSqliteStateStore(dir.db()), "state store " + dir.db().string() +
                                                        ": cannot switch to WAL journal mode: file is not a database");
  std::ifstream in(dir.db(), std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == garbage);
}

TEST_CASE("a failing operation names itself, the file and SQLite's reason", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  const Incident incident = store->CreateIncident("fire", "damaged");

  SECTION("a table missing behind the store's back") {
    RawDatabase(dir.db()).Exec("DROP TABLE persisted");
    CHECK_THROWS_WITH(store->PersistPut("i1", "h", "{}"),
                      "state store " + dir.db().string() + ": cannot persist a record: no such table: persisted");
    // The store stays usable for what is intact.
    CHECK(store->FindIncident(incident.id));
  }

  SECTION("a status this build does not know") {
    RawDatabase(dir.db()).Exec("UPDATE incidents SET status = 'PAUSED'");
    CHECK_THROWS_WITH(store->FindIncident(incident.id), "state store " + dir.db().string() + ": incident " +
                                                            incident.id + " has the unknown status 'PAUSED'");
  }

  SECTION("a failed batch leaves nothing behind") {
    RawDatabase(dir.db()).Exec("CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.message_id = 'bad' "
                               "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END");
    const std::vector<MessageEvent> events{Sent("good", 100), Sent("bad", 200)};
    CHECK_THROWS_WITH(store->RecordMessages(events), "state store " + dir.db().string() +
                                                         ": cannot record messages: refused by trigger");
    CHECK(store->MessageLog("i1").empty());
    const MessageEvent good = Sent("good", 100);
    store->RecordMessages({&good, 1});
    CHECK(store->MessageLog("i1").size() == 1);
  }
}

TEST_CASE("one store serves many threads at once", "[state]") {
  TempDir dir;
  auto store = OpenSqliteStateStore(dir.db());
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  std::vector<std::future<void>> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.push_back(std::async(std::launch::async, [&store, t] {
      for (int i = 0; i < kRounds; ++i) {
        const Incident incident = store->CreateIncident("load", "t" + std::to_string(t));
        const MessageEvent sent = Sent("m-" + std::to_string(t) + "-" + std::to_string(i), i, "load");
        store->RecordMessages({&sent, 1});
        store->PersistPut("load", "h", "{}");
        store->TransitionIncident(incident.id, IncidentStatus::kActive);
      }
    }));
  }
  for (std::future<void>& thread : threads) thread.get();
  IncidentFilter active;
  active.status = IncidentStatus::kActive;
  active.limit = 1000;
  CHECK(store->ListIncidents(active).size() == kThreads * kRounds);
  CHECK(store->CountInFlight("load") == kThreads * kRounds);
  CHECK(store->PersistGet("load", "h").size() == kThreads * kRounds);
}
