#include "crash_loop_guard.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "sqlite_state_store.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using Catch::StartsWith;
using workflowd::CrashLoopGuard;
using workflowd::OpenSqliteStateStore;
using workflowd::QueueType;
using workflowd::Settings;
using workflowd::StateStore;

namespace {

// A state store in a fresh directory, removed afterwards.
class TempStore {
 public:
  StateStore& operator*() { return *store_; }

 private:
  workflowd::testing::TempDir dir_{"workflowd-guard-test"};
  std::unique_ptr<StateStore> store_ = OpenSqliteStateStore(dir_.path() / "state.db");
};

Settings WithMaxDeliveries(unsigned max_deliveries) {
  Settings settings;
  settings.max_deliveries = max_deliveries;
  settings.queues["quorum_q"].type = QueueType::kQuorum;
  settings.queues["listed_classic_q"];
  return settings;
}

// Admits a redelivery of message_id on queue, as after a crash that left it unfinished.
CrashLoopGuard::Admission Crashed(CrashLoopGuard& guard, const std::string& queue, const std::string& message_id,
                                  const std::string& body = "{}") {
  return guard.Admit(queue, true, message_id, body);
}

}  // namespace

TEST_CASE("a message redelivered max_deliveries times without finishing is refused with the reason",
          "[crash-loop]") {
  TempStore store;
  const Settings settings = WithMaxDeliveries(3);
  CrashLoopGuard guard(*store, settings);

  // The first delivery is not counted: it costs no write.
  CHECK(guard.Admit("q", false, "m1", "{}").key.empty());
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
  const CrashLoopGuard::Admission refused = Crashed(guard, "q", "m1");
  CHECK_THAT(refused.refusal, StartsWith("delivered 3 times without its handler finishing (max_deliveries 3)"));
  // The key its count stays under, for the dead letter to name.
  CHECK(refused.key == "m1");

  // Finished given the refusal leaves the count.
  guard.Finished("q", refused);
  // Until its dead letter is confirmed the message may come back (a crash in between): it is
  // refused again, not run.
  CHECK_THAT(Crashed(guard, "q", "m1").refusal, StartsWith("delivered 4 times"));
  // Sending the dead letter back clears the count: the copy has max_deliveries tries of its own.
  (*store).ForgetUnfinishedDeliveries("q", "m1");
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
}

TEST_CASE("a run that finishes starts the count again, even while a newer run of the message is going",
          "[crash-loop]") {
  TempStore store;
  const Settings settings = WithMaxDeliveries(3);
  CrashLoopGuard guard(*store, settings);

  // After a reconnect the broker delivers a message again while its first run still goes.
  const CrashLoopGuard::Admission older = Crashed(guard, "q", "m1");
  REQUIRE(Crashed(guard, "q", "m1").refusal.empty());
  // The older run finishes: the message can finish. The newer run then crashes the process.
  guard.Finished("q", older);
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
  CHECK_FALSE(Crashed(guard, "q", "m1").refusal.empty());
}

TEST_CASE("a finished handler clears its message's count, and each queue and message counts alone", "[crash-loop]") {
  TempStore store;
  const Settings settings = WithMaxDeliveries(2);
  CrashLoopGuard guard(*store, settings);

  const CrashLoopGuard::Admission first = Crashed(guard, "q", "m1");
  REQUIRE(first.refusal.empty());
  CHECK(first.key == "m1");
  guard.Finished("q", first);
  CHECK(Crashed(guard, "q", "m1").refusal.empty());
  CHECK(Crashed(guard, "other_q", "m1").refusal.empty());
  CHECK(Crashed(guard, "q", "m2").refusal.empty());
  CHECK_FALSE(Crashed(guard, "q", "m1").refusal.empty());
  // A queue the config lists without a type is classic, and guarded.
  CHECK(Crashed(guard, "listed_classic_q", "m3").refusal.empty());
  CHECK_FALSE(Crashed(guard, "listed_classic_q", "m3").refusal.empty());
}

TEST_CASE("a message without an id is known by its body", "[crash-loop]") {
  TempStore store;
  const Settings settings = WithMaxDeliveries(2);
  CrashLoopGuard guard(*store, settings);

  const CrashLoopGuard::Admission first = Crashed(guard, "q", "", R"({"IncidentID":"a"})");
  CHECK_THAT(first.key, StartsWith("body:"));
  CHECK(Crashed(guard, "q", "", R"({"IncidentID":"b"})").refusal.empty());
  CHECK_FALSE(Crashed(guard, "q", "", R"({"IncidentID":"a"})").refusal.empty());
}

TEST_CASE("quorum queues are left to the broker's x-delivery-limit", "[crash-loop]") {
  TempStore store;
  const Settings settings = WithMaxDeliveries(1);
  CrashLoopGuard guard(*store, settings);
  for (int i = 0; i < 3; ++i) {
    const CrashLoopGuard::Admission admission = Crashed(guard, "quorum_q", "m1");
    CHECK(admission.refusal.empty());
    CHECK(admission.key.empty());
  }
  CHECK((*store).CountUnfinishedDelivery("quorum_q", "m1") == 1);
}
