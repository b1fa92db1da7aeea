// The SDK's send, FlushMessages and Message semantics, against a fake runtime: no broker.
#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

#include <chrono>
#include <cstdlib>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using Catch::Matchers::Contains;
using workflow::Message;
using workflow::OutgoingMessage;
using workflow::host::Invocation;

// Records what the SDK forwards to the host; Publish fails while publish_failures is positive.
class FakeRuntime final : public workflow::host::Runtime {
 public:
  void RegisterHandler(workflow::Handler handler, std::string_view queue,
                       const workflow::HandlerOptions&) override {
    registered.emplace_back(std::string(queue), handler.name);
  }

  void Publish(const std::vector<OutgoingMessage>& messages) override {
    if (publish_failures > 0) {
      --publish_failures;
      throw workflow::PublishError("the broker refused the batch");
    }
    published.push_back(messages);
  }

  std::vector<std::pair<std::string, std::string>> registered;  // (queue, handler name)
  std::vector<std::vector<OutgoingMessage>> published;
  int publish_failures = 0;
};

// A FakeRuntime installed for the lifetime of a test.
struct InstalledFakeRuntime {
  InstalledFakeRuntime() { workflow::host::InstallRuntime(&runtime); }
  ~InstalledFakeRuntime() { workflow::host::InstallRuntime(nullptr); }
  InstalledFakeRuntime(const InstalledFakeRuntime&) = delete;
  InstalledFakeRuntime& operator=(const InstalledFakeRuntime&) = delete;

  FakeRuntime runtime;
};

int CountMembers(const Message& message, std::string_view name) {
  int count = 0;
  for (const auto& member : message.json().GetObject()) {
    if (std::string_view(member.name.GetString(), member.name.GetStringLength()) == name) ++count;
  }
  return count;
}

std::string LongText() { return std::string(200, 'x') + " end"; }

}  // namespace

TEST_CASE("send inside an invocation enqueues stamped copies in its outbox, in order") {
  Message message = Message::Parse(R"({"IncidentID":"incident-1","step":3})");
  const std::string original = message.ToJson();
  Invocation invocation("A_handler");

  workflow::send(message, "B_queue", "from_a", "to_b");
  workflow::send(message, "C_queue");
  workflow::send(message, "D_queue");

  const std::vector<OutgoingMessage>& outbox = invocation.outbox();
  REQUIRE(outbox.size() == 3);
  CHECK(outbox[0].queue == "B_queue");
  CHECK(outbox[1].queue == "C_queue");
  CHECK(outbox[2].queue == "D_queue");
  CHECK(outbox[0].src_tag == "from_a");
  CHECK(outbox[0].dest_tag == "to_b");
  CHECK(outbox[1].src_tag.empty());
  CHECK(outbox[1].dest_tag.empty());

  std::set<std::string> message_ids;
  for (const OutgoingMessage& sent : outbox) {
    CHECK(sent.message_id.size() == 36);
    message_ids.insert(sent.message_id);
    CHECK(sent.incident_id == "incident-1");
    CHECK(sent.originator == "A_handler");
    Message body = Message::Parse(sent.body);
    CHECK(body.message_id() == sent.message_id);
    CHECK(body.originator() == "A_handler");
    CHECK(body.incident_id() == "incident-1");
    CHECK(body.GetInt("step") == 3);
  }
  CHECK(message_ids.size() == 3);
  CHECK(message.ToJson() == original);
}

TEST_CASE("send stamps provided_caller as the originator when given") {
  Invocation invocation("A_handler");
  workflow::send(Message::ForIncident("incident-1"), "B_queue", "", "", "external_producer");

  REQUIRE(invocation.outbox().size() == 1);
  CHECK(invocation.outbox()[0].originator == "external_producer");
  CHECK(Message::Parse(invocation.outbox()[0].body).originator() == "external_producer");
}

TEST_CASE("send replaces a MessageID and originator already in the body") {
  Message message = Message::Parse(
      R"({"IncidentID":"incident-1","MessageID":"old-id","originator":"old_handler"})");
  Invocation invocation("A_handler");
  workflow::send(message, "B_queue");

  REQUIRE(invocation.outbox().size() == 1);
  Message body = Message::Parse(invocation.outbox()[0].body);
  CHECK(CountMembers(body, workflow::kMessageIdField) == 1);
  CHECK(CountMembers(body, workflow::kOriginatorField) == 1);
  CHECK(body.message_id() == invocation.outbox()[0].message_id);
  CHECK(body.originator() == "A_handler");
  CHECK(message.message_id() == "old-id");
}

TEST_CASE("send refuses a message without IncidentID, naming the queue") {
  Invocation invocation("A_handler");
  Message message = Message::Parse(R"({"step":1})");

  CHECK_THROWS_MATCHES(workflow::send(message, "B_queue"), workflow::MessageError,
                       Catch::Message("send to 'B_queue': the message has no IncidentID; every "
                                      "message belongs to an incident"));
  CHECK(invocation.outbox().empty());
}

TEST_CASE("send refuses an invalid queue name") {
  Invocation invocation("A_handler");
  Message message = Message::ForIncident("incident-1");

  CHECK_THROWS_MATCHES(workflow::send(message, ""), workflow::MessageError,
                       Catch::Message("send to '': the queue name is empty"));
  CHECK_THROWS_MATCHES(workflow::send(message, "amq.direct"), workflow::MessageError,
                       Catch::Message("send to 'amq.direct': names starting with 'amq.' belong to "
                                      "the broker"));
  CHECK(invocation.outbox().empty());
}

TEST_CASE("FlushMessages in an invocation publishes exactly its outbox, leaving the producer's") {
  InstalledFakeRuntime fake;
  workflow::send(Message::ForIncident("incident-1"), "producer_queue");
  {
    Invocation invocation("A_handler");
    workflow::send(Message::ForIncident("incident-1"), "B_queue");
    workflow::send(Message::ForIncident("incident-1"), "C_queue");

    workflow::FlushMessages();

    CHECK(invocation.outbox().empty());
    REQUIRE(fake.runtime.published.size() == 1);
    const std::vector<OutgoingMessage>& batch = fake.runtime.published[0];
    REQUIRE(batch.size() == 2);
    CHECK(batch[0].queue == "B_queue");
    CHECK(batch[1].queue == "C_queue");
  }

  workflow::FlushMessages();

  REQUIRE(fake.runtime.published.size() == 2);
  REQUIRE(fake.runtime.published[1].size() == 1);
  CHECK(fake.runtime.published[1][0].queue == "producer_queue");
}

TEST_CASE("FlushMessages keeps the messages enqueued when publishing fails, to send them again") {
  InstalledFakeRuntime fake;
  fake.runtime.publish_failures = 1;
  Invocation invocation("A_handler");
  workflow::send(Message::ForIncident("incident-1"), "B_queue");
  workflow::send(Message::ForIncident("incident-1"), "C_queue");
  const std::string first_id = invocation.outbox()[0].message_id;

  CHECK_THROWS_MATCHES(workflow::FlushMessages(), workflow::PublishError,
                       Catch::Message("the broker refused the batch"));
  CHECK(invocation.outbox().size() == 2);

  workflow::FlushMessages();

  CHECK(invocation.outbox().empty());
  REQUIRE(fake.runtime.published.size() == 1);
  REQUIRE(fake.runtime.published[0].size() == 2);
  CHECK(fake.runtime.published[0][0].message_id == first_id);
  CHECK(fake.runtime.published[0][1].queue == "C_queue");
}

TEST_CASE("A nested invocation takes over sends and restores the outer one when it ends") {
  REQUIRE(Invocation::Current() == nullptr);
  {
    Invocation outer("Outer_handler");
    {
      Invocation inner("Inner_handler");
      CHECK(Invocation::Current() == &inner);
      workflow::send(Message::ForIncident("incident-1"), "inner_queue");
      REQUIRE(inner.outbox().size() == 1);
      CHECK(inner.outbox()[0].originator == "Inner_handler");
    }
    CHECK(Invocation::Current() == &outer);
    workflow::send(Message::ForIncident("incident-1"), "outer_queue");
    REQUIRE(outer.outbox().size() == 1);
    CHECK(outer.outbox()[0].originator == "Outer_handler");
  }
  CHECK(Invocation::Current() == nullptr);
}

TEST_CASE("RegisterHandler checks the queue name, then forwards to the runtime") {
  auto handler = [](Message&) {};
  SECTION("with a runtime") {
    InstalledFakeRuntime fake;
    workflow::RegisterHandler(workflow::Handler{"A_handler", handler}, "A_queue");
    CHECK_THROWS_MATCHES(
        workflow::RegisterHandler(workflow::Handler{"B_handler", handler}, "amq.b"),
        workflow::RegistrationError,
        Catch::Message("RegisterHandler(B_handler, 'amq.b'): names starting with 'amq.' belong "
                       "to the broker"));
    CHECK_THROWS_MATCHES(workflow::RegisterHandler(workflow::Handler{"Empty", nullptr}, "C_queue"),
                         workflow::RegistrationError,
                         Catch::Message("RegisterHandler(Empty, 'C_queue'): the handler function "
                                        "is empty"));
    REQUIRE(fake.runtime.registered.size() == 1);
    CHECK(fake.runtime.registered[0] ==
          std::pair<std::string, std::string>("A_queue", "A_handler"));
  }
  SECTION("without a runtime") {
    CHECK_THROWS_WITH(workflow::RegisterHandler(workflow::Handler{"A_handler", handler}, "A_queue"),
                      Contains("was called outside RegisterHandlers"));
  }
}

TEST_CASE("Message::Parse refuses a body that is not a UTF-8 JSON object, saying why") {
  CHECK_THROWS_MATCHES(Message::Parse(R"([1, 2])"), workflow::MessageError,
                       Catch::Message("body is JSON but not an object"));
  CHECK_THROWS_MATCHES(Message::Parse(R"({"IncidentID": )"), workflow::MessageError,
                       Catch::Message("body is not valid JSON: Invalid value. at byte 15"));
  CHECK_THROWS_MATCHES(Message::Parse("{\"IncidentID\":\"\xff\"}"), workflow::MessageError,
                       Catch::Message("body is not valid JSON: Invalid encoding in string. at "
                                      "byte 15"));
  CHECK_THROWS_WITH(Message::Parse(std::string("{\"IncidentID\":\"i\0\"}", 19)),
                    Contains("body is not valid JSON"));
  CHECK_THROWS_WITH(Message::Parse(std::string("{\"IncidentID\":\"i\"}\0{}", 21)),
                    Contains("body is not valid JSON"));
}

TEST_CASE("Message getters throw MessageError naming the field") {
  Message message =
      Message::Parse(R"({"IncidentID":"incident-1","count":2,"ratio":0.5,"ok":true})");

  CHECK(message.GetString("IncidentID") == "incident-1");
  CHECK(message.GetInt("count") == 2);
  CHECK(message.GetDouble("ratio") == 0.5);
  CHECK(message.GetBool("ok"));
  CHECK_THROWS_MATCHES(message.GetString("name"), workflow::MessageError,
                       Catch::Message("message field 'name' is missing"));
  CHECK_THROWS_MATCHES(message.GetString("count"), workflow::MessageError,
                       Catch::Message("message field 'count' is not a string"));
  CHECK_THROWS_MATCHES(message.GetInt("ratio"), workflow::MessageError,
                       Catch::Message("message field 'ratio' is not an integer"));
  CHECK_THROWS_MATCHES(message.GetDouble("ok"), workflow::MessageError,
                       Catch::Message("message field 'ok' is not a number"));
  CHECK_THROWS_MATCHES(message.GetBool("IncidentID"), workflow::MessageError,
                       Catch::Message("message field 'IncidentID' is not a boolean"));
  CHECK_THROWS_MATCHES(message.Get("absent"), workflow::MessageError,
                       Catch::Message("message field 'absent' is missing"));
}

TEST_CASE("A parsed message reads the same after it is moved") {
  SECTION("a short body") {
    std::string body = R"({"k":"v"})";
    REQUIRE(body.size() < 16);
    Message parsed = Message::Parse(std::move(body));
    Message moved(std::move(parsed));
    CHECK(moved.GetString("k") == "v");
    Message assigned;
    assigned = std::move(moved);
    CHECK(assigned.GetString("k") == "v");
  }
  SECTION("a long body") {
    std::string body = R"({"IncidentID":"incident-1","text":")" + LongText() + R"("})";
    Message parsed = Message::Parse(std::move(body));
    std::vector<Message> messages;
    messages.push_back(std::move(parsed));
    messages.emplace_back();  // reallocates, moving the first message again
    CHECK(messages[0].incident_id() == "incident-1");
    CHECK(messages[0].GetString("text") == LongText());
  }
}

TEST_CASE("A clone of a parsed message outlives the original") {
  auto original = std::make_unique<Message>(Message::Parse(
      R"({"IncidentID":"incident-1","text":")" + LongText() + R"("})", "src", "dst"));
  Message clone = original->Clone();
  original.reset();

  CHECK(clone.incident_id() == "incident-1");
  CHECK(clone.GetString("text") == LongText());
  CHECK(clone.src_tag() == "src");
  CHECK(clone.dest_tag() == "dst");
}

TEST_CASE("Message::Parse refuses nesting past 512 levels and lone UTF-16 surrogates", "[sdk][message]") {
  const std::string deep = std::string(513, '[') + std::string(513, ']');
  const std::string body = "{\"IncidentID\":\"i\",\"nested\":" + deep + "}";
  REQUIRE_THROWS_WITH(Message::Parse(body), "body is nested deeper than 512 levels");
  const std::string shallow = std::string(500, '[') + std::string(500, ']');
  CHECK(Message::Parse("{\"IncidentID\":\"i\",\"nested\":" + shallow + "}").incident_id() == "i");

  REQUIRE_THROWS_WITH(Message::Parse(R"({"IncidentID":"i","text":"a\udc00b"})"),
                      "body is not valid JSON: a lone UTF-16 low surrogate escape");
  REQUIRE_THROWS_WITH(Message::Parse(R"({"IncidentID":"i","text":"a\ud83db"})"),
                      "body is not valid JSON: a UTF-16 high surrogate escape without its low half");
  // A surrogate pair is one character; brackets, quotes and backslashes inside strings are text.
  Message emoji = Message::Parse(R"({"IncidentID":"i","text":"\ud83d\ude00 [{\"\\"})");
  CHECK(emoji.GetString("text") == "\xF0\x9F\x98\x80 [{\"\\");
  CHECK(Message::Parse(R"({"IncidentID":"i","a":"\u0041\\u"})").GetString("a") == "A\\u");
}

TEST_CASE("Message refuses numbers beyond a double and finds keys by their whole length", "[sdk][message]") {
  REQUIRE_THROWS_WITH(Message::Parse(R"({"IncidentID":"i","big":10e308})"),
                      "body holds a number beyond the range of a double");
  Message message = Message::ForIncident("i");
  message.Set("ratio", std::numeric_limits<double>::infinity());
  REQUIRE_THROWS_WITH(message.ToJson(), Contains("holds a number that is not finite"));

  // A key with an escaped NUL, and a view into a longer string: both looked up by length.
  Message keys = Message::Parse(R"({"IncidentID":"i","a\u0000b":1,"ab":2})");
  CHECK(keys.GetInt(std::string_view("a\0b", 3)) == 1);
  const std::string longer = "abc";
  CHECK(keys.GetInt(std::string_view(longer).substr(0, 2)) == 2);
  keys.Set(std::string_view("a\0b", 3), 3);
  CHECK(keys.GetInt(std::string_view("a\0b", 3)) == 3);
  CHECK(keys.json().MemberCount() == 3);
}

TEST_CASE("MessageIDs are UUIDv7: unique, and ordered by the millisecond they were made in", "[sdk]") {
  using workflow::host::NewMessageId;
  std::set<std::string> seen;
  std::string previous = NewMessageId();
  for (int i = 0; i < 10000; ++i) {
    const std::string id = NewMessageId();
    REQUIRE(id.size() == 36);
    CHECK(id[14] == '7');                                 // the version nibble
    CHECK(std::string_view("89ab").find(id[19]) != std::string_view::npos);  // the RFC variant
    // The first 48 bits (12 hex digits, with one dash) are the time: they never go back.
    CHECK(id.substr(0, 13) >= previous.substr(0, 13));
    CHECK(seen.insert(id).second);
    previous = id;
  }
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::string hex = previous.substr(0, 8) + previous.substr(9, 4);
  CHECK(std::llabs(static_cast<long long>(std::stoull(hex, nullptr, 16)) - now_ms) < 10000);
}
