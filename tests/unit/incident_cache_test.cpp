#include "incident_cache.hpp"

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sqlite_state_store.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using workflowd::IncidentCache;
using workflowd::IncidentStatus;
using workflowd::OpenSqliteStateStore;
using workflowd::testing::TempDir;

namespace {

using workflowd::Incident;
using workflowd::StateStore;

// The daemon's store, counting its incident reads.
class CountingStore final : public StateStore {
 public:
  explicit CountingStore(StateStore& store) : store_(store) {}
  int reads = 0;

  std::optional<Incident> FindIncident(std::string_view id) override {
    ++reads;
    return store_.FindIncident(id);
  }
  bool TransitionIncident(std::string_view id, IncidentStatus to, std::string_view comment) override {
    return store_.TransitionIncident(id, to, comment);
  }
  std::uint64_t ChangeVersion() override { return store_.ChangeVersion(); }

  // Not used by the cache.
  Incident CreateIncident(std::string_view, std::string_view, std::string_view) override { throw Unused(); }
  std::vector<Incident> ListIncidents(const workflowd::IncidentFilter&) override { throw Unused(); }
  void RecordMessages(std::span<const workflowd::MessageEvent>) override { throw Unused(); }
  std::vector<workflowd::MessageRecord> MessageLog(std::string_view) override { throw Unused(); }
  std::size_t CountInFlight(std::string_view) override { throw Unused(); }
  void PersistPut(std::string_view, std::string_view, std::string_view) override { throw Unused(); }
  std::vector<std::string> PersistGet(std::string_view, std::string_view) override { throw Unused(); }
  std::vector<std::string> PersistGetAll(std::string_view) override { throw Unused(); }
  bool TryAcquireLease(std::string_view, std::string_view, std::string_view, std::chrono::milliseconds) override {
    throw Unused();
  }
  void ReleaseLease(std::string_view, std::string_view, std::string_view) override { throw Unused(); }
  void DeleteIncidentState(std::string_view) override { throw Unused(); }
  std::int64_t CountUnfinishedDelivery(std::string_view, std::string_view) override { throw Unused(); }
  void ForgetUnfinishedDeliveries(std::string_view, std::string_view) override { throw Unused(); }

 private:
  static std::logic_error Unused() { return std::logic_error("the incident cache does not call this"); }
  StateStore& store_;
};

// The daemon's store and another process's (workflowctl, a second daemon) on one file.
struct TwoStores {
  TempDir dir{"workflowd-incident-cache-test"};
  std::unique_ptr<StateStore> ours = OpenSqliteStateStore(dir.path() / "state.db");
  std::unique_ptr<StateStore> theirs = OpenSqliteStateStore(dir.path() / "state.db");
  CountingStore counted{*ours};
};

}  // namespace

TEST_CASE("the incident cache reads the store again only after a change", "[incident-cache]") {
  TwoStores stores;
  const std::string id = stores.theirs->CreateIncident("fire", "first").id;
  IncidentCache cache(stores.counted);

  SECTION("while nothing is committed, every look is answered from memory") {
    for (int i = 0; i < 100; ++i) CHECK(cache.Status(id) == IncidentStatus::kPending);
    CHECK(stores.counted.reads == 1);
  }

  SECTION("another process's change is seen at the first look after a refresh of the version") {
    CHECK(cache.Status(id) == IncidentStatus::kPending);
    REQUIRE(stores.theirs->TransitionIncident(id, IncidentStatus::kCancelled, "by an operator"));
    cache.RefreshVersion();  // what the I/O thread does once a pass's deliveries have arrived
    CHECK(cache.Status(id) == IncidentStatus::kCancelled);
    CHECK(stores.counted.reads == 2);
  }

  SECTION("without a refresh, another process's change is seen once the version is kMaxVersionAge old") {
    CHECK(cache.Status(id) == IncidentStatus::kPending);
    REQUIRE(stores.theirs->TransitionIncident(id, IncidentStatus::kCancelled, "by an operator"));
    std::this_thread::sleep_for(IncidentCache::kMaxVersionAge + 1ms);
    CHECK(cache.Status(id) == IncidentStatus::kCancelled);
  }

  SECTION("a commit of anything makes each incident read once more") {
    const std::string other = stores.theirs->CreateIncident("fire", "second").id;
    cache.RefreshVersion();
    CHECK(cache.Status(id) == IncidentStatus::kPending);
    CHECK(cache.Status(other) == IncidentStatus::kPending);
    stores.theirs->CreateIncident("fire", "third");
    cache.RefreshVersion();
    for (int i = 0; i < 10; ++i) {
      CHECK(cache.Status(id) == IncidentStatus::kPending);
      CHECK(cache.Status(other) == IncidentStatus::kPending);
    }
    CHECK(stores.counted.reads == 4);
  }

  SECTION("this process's own transition holds at once") {
    CHECK(cache.Status(id) == IncidentStatus::kPending);
    CHECK(cache.Transition(id, IncidentStatus::kActive));
    CHECK(cache.Status(id) == IncidentStatus::kActive);
    CHECK(cache.Transition(id, IncidentStatus::kComplete));
    CHECK(cache.Status(id) == IncidentStatus::kComplete);
    CHECK(stores.theirs->FindIncident(id)->status == IncidentStatus::kComplete);
  }

  SECTION("a transition refused because another process ended the incident forgets the entry") {
    CHECK(cache.Status(id) == IncidentStatus::kPending);
    REQUIRE(stores.theirs->TransitionIncident(id, IncidentStatus::kComplete));
    CHECK_FALSE(cache.Transition(id, IncidentStatus::kError, "a handler failed"));
    cache.RefreshVersion();
    CHECK(cache.Status(id) == IncidentStatus::kComplete);
  }
}

TEST_CASE("the incident cache keeps an ended status for good and never an unknown incident", "[incident-cache]") {
  TwoStores stores;
  IncidentCache cache(stores.counted);

  SECTION("an incident created after a miss is found at once") {
    CHECK_FALSE(cache.Status("not-yet"));
    const std::string id = stores.theirs->CreateIncident("fire", "late").id;
    CHECK(cache.Status(id) == IncidentStatus::kPending);
  }

  SECTION("an ended incident stays ended, even if the file said otherwise later") {
    const std::string id = stores.theirs->CreateIncident("fire", "done").id;
    REQUIRE(stores.theirs->TransitionIncident(id, IncidentStatus::kComplete));
    CHECK(cache.Status(id) == IncidentStatus::kComplete);
    // No workflowd call reopens an incident; a hand edit of the file stands in for a stale read.
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open((stores.dir.path() / "state.db").c_str(), &raw) == SQLITE_OK);
    const std::string reopen = "UPDATE incidents SET status = 'ACTIVE' WHERE id = '" + id + "'";
    CHECK(sqlite3_exec(raw, reopen.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
    CHECK(stores.theirs->FindIncident(id)->status == IncidentStatus::kActive);
    CHECK(cache.Status(id) == IncidentStatus::kComplete);
    CHECK(stores.counted.reads == 1);
  }
}
