#include "dead_letter_queue.hpp"

#include <catch2/catch.hpp>

using workflowd::DeadLetter;
using workflowd::DescribeDeadLetter;
using workflowd::FetchedMessage;

namespace {

FetchedMessage Fetched(std::string body, std::map<std::string, std::string, std::less<>> headers) {
  FetchedMessage message;
  message.body_size = body.size();
  message.body = std::move(body);
  message.text_headers = std::move(headers);
  return message;
}

}  // namespace

TEST_CASE("a dead letter of workflowd's is described by its headers and timestamp", "[dead-letters]") {
  FetchedMessage message = Fetched("not json", {{"x-workflowd-reason", "not JSON"},
                                                {"x-workflowd-queue", "A_queue"},
                                                {"x-workflowd-message-id", "m-1"},
                                                {"x-workflowd-crash-count-key", "m-1"}});
  message.message_id = "dead-letter:1:7";
  message.timestamp = 1700000000;
  const DeadLetter letter = DescribeDeadLetter(message);
  CHECK(letter.message_id == "m-1");
  CHECK(letter.queue == "A_queue");
  CHECK(letter.reason == "not JSON");
  CHECK(letter.dead_lettered_at_ms == 1700000000000);
  CHECK(letter.body == "not json");
  CHECK(letter.crash_count_key == "m-1");
}

TEST_CASE("without an id header, a dead letter is named by its body's MessageID, never by the id of "
          "workflowd's publish",
          "[dead-letters]") {
  FetchedMessage message = Fetched(R"({"IncidentID":"i","MessageID":"from-body"})",
                                   {{"x-workflowd-reason", "unroutable"}, {"x-workflowd-queue", "A_queue"}});
  message.message_id = "dead-letter:1:8";
  CHECK(DescribeDeadLetter(message).message_id == "from-body");

  message.body = "{not json";
  message.body_size = message.body.size();
  CHECK(DescribeDeadLetter(message).message_id.empty());

  // Only part of the body was read: what follows could be anything.
  message.body = R"({"IncidentID":"i","MessageID":"cut"})";
  message.body_size = message.body.size() + 100;
  CHECK(DescribeDeadLetter(message).message_id.empty());
}

TEST_CASE("a dead letter of the broker's is described by its latest x-death", "[dead-letters]") {
  FetchedMessage message = Fetched("{}", {{"x-death.queue", "B_queue"},
                                          {"x-death.reason", "rejected"},
                                          {"x-first-death-queue", "workflowd.delay.50"},
                                          {"x-first-death-reason", "expired"},
                                          {"src_tag", "s"},
                                          // the producer's header, kept by the broker
                                          {"x-workflowd-crash-count-key", "someone-elses"}});
  message.message_id = "original-id";
  message.death_time = 1700000001;
  const DeadLetter letter = DescribeDeadLetter(message);
  CHECK(letter.message_id == "original-id");
  CHECK(letter.queue == "B_queue");
  CHECK(letter.reason ==
        "dead-lettered by the broker: rejected (workflowd rejects a body over max_message_bytes unread)");
  CHECK(letter.dead_lettered_at_ms == 1700000001000);
  CHECK(letter.src_tag == "s");
  // Only workflowd's own dead letters name a count for a resend to clear.
  CHECK(letter.crash_count_key.empty());

  // An x-death without the entry's fields: the x-first-death headers stand in.
  const DeadLetter first = DescribeDeadLetter(
      Fetched("{}", {{"x-first-death-queue", "C_queue"}, {"x-first-death-reason", "delivery_limit"}}));
  CHECK(first.queue == "C_queue");
  CHECK_THAT(first.reason, Catch::Contains("x-delivery-limit"));
  CHECK_FALSE(first.dead_lettered_at_ms);
}
