#include "dead_letter_queue.hpp"

#include <workflow/errors.hpp>
#include <workflow/message.hpp>

namespace workflowd {
namespace {

// The message id workflowd's own dead-letter publish carries: it tracks that publish, it does not
// name the message.
constexpr std::string_view kDeadLetterPublishIdPrefix = "dead-letter:";

std::string Header(const FetchedMessage& message, std::string_view name) {
  const auto found = message.text_headers.find(name);
  return found == message.text_headers.end() ? std::string() : found->second;
}

std::string MessageIdOf(const FetchedMessage& message) {
  if (std::string id = Header(message, "x-workflowd-message-id"); !id.empty()) return id;
  if (!message.message_id.empty() && !message.message_id.starts_with(kDeadLetterPublishIdPrefix)) {
    return message.message_id;
  }
  // The body's MessageID, when the whole body was read and is a JSON object.
  if (message.body.size() != message.body_size) return {};
  try {
    return std::string(workflow::Message::Parse(message.body).message_id());
  } catch (const workflow::MessageError&) {
    return {};
  }
}

// The broker's reasons (x-death), in words.
std::string BrokerReason(const std::string& reason) {
  std::string text = "dead-lettered by the broker: " + reason;
  if (reason == "rejected") return text + " (workflowd rejects a body over max_message_bytes unread)";
  if (reason == "delivery_limit") return text + " (delivered more often than the queue's x-delivery-limit)";
  if (reason == "expired") return text + " (its time to live ran out)";
  if (reason == "maxlen") return text + " (the queue was over its length limit)";
  return text;
}

}  // namespace

DeadLetter DescribeDeadLetter(const FetchedMessage& message) {
  DeadLetter letter;
  letter.message_id = MessageIdOf(message);
  letter.body = message.body;
  letter.body_size = message.body_size;
  letter.src_tag = Header(message, "src_tag");
  letter.dest_tag = Header(message, "dest_tag");
  if (std::string reason = Header(message, "x-workflowd-reason"); !reason.empty()) {
    letter.reason = std::move(reason);
    // Only on workflowd's own dead letters: the broker keeps a producer's headers on what it
    // dead-letters, and a resend clears the count this names.
    letter.crash_count_key = Header(message, "x-workflowd-crash-count-key");
    letter.queue = Header(message, "x-workflowd-queue");
    if (message.timestamp > 0) letter.dead_lettered_at_ms = message.timestamp * 1000;
    return letter;
  }
  letter.queue = Header(message, "x-death.queue");
  if (letter.queue.empty()) letter.queue = Header(message, "x-first-death-queue");
  std::string reason = Header(message, "x-death.reason");
  if (reason.empty()) reason = Header(message, "x-first-death-reason");
  if (!reason.empty()) letter.reason = BrokerReason(reason);
  if (message.death_time > 0) {
    letter.dead_lettered_at_ms = message.death_time * 1000;
  } else if (message.timestamp > 0) {
    letter.dead_lettered_at_ms = message.timestamp * 1000;
  }
  return letter;
}

std::vector<DeadLetter> BrowseDeadLetters(AmqpConnection& connection, std::string_view queue, std::size_t limit) {
  std::vector<DeadLetter> letters;
  std::vector<std::uint64_t> taken;
  while (letters.size() < limit) {
    std::optional<FetchedMessage> message = connection.Get(queue, kDeadLetterBodyKeptBytes);
    if (!message) break;
    taken.push_back(message->tag);
    letters.push_back(DescribeDeadLetter(*message));
  }
  // Only after the last get: a message put back at once would be the next one got.
  for (std::uint64_t tag : taken) connection.Requeue(tag);
  return letters;
}

DeadLetter ResendDeadLetter(AmqpConnection& connection, std::string_view queue, std::string_view message_id,
                            std::chrono::milliseconds confirm_timeout,
                            const std::function<void(const DeadLetter&)>& before_publish) {
  std::vector<std::uint64_t> passed;  // looked at and not the one: put back at the end
  std::optional<DeadLetter> found;
  std::uint64_t found_tag = 0;
  // Whole bodies, for the resend; one message at a time is held.
  while (std::optional<FetchedMessage> message = connection.Get(queue, UINT64_MAX)) {
    DeadLetter letter = DescribeDeadLetter(*message);
    if (letter.message_id == message_id) {
      found = std::move(letter);
      found_tag = message->tag;
      break;
    }
    passed.push_back(message->tag);
  }
  const auto put_back = [&] {
    for (std::uint64_t tag : passed) connection.Requeue(tag);
  };
  if (!found) {
    put_back();
    throw DeadLetterError("no dead letter with message id '" + std::string(message_id) + "' in queue '" +
                          std::string(queue) + "' (" + std::to_string(passed.size()) +
                          " message(s) looked at); see workflowctl dead-letters");
  }
  passed.push_back(found_tag);
  if (found->queue.empty()) {
    put_back();
    throw DeadLetterError("the dead letter with message id '" + std::string(message_id) +
                          "' does not say which queue it came from; it stays in '" + std::string(queue) + "'");
  }

  before_publish(*found);
  const std::uint64_t publish_tag = connection.Publish(
      found->queue, found->body,
      {.message_id = found->message_id, .headers = {{"src_tag", found->src_tag}, {"dest_tag", found->dest_tag}}});
  std::string failure;
  bool confirmed = false;
  const auto deadline = std::chrono::steady_clock::now() + confirm_timeout;
  while (!confirmed && failure.empty()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      failure = "the broker did not confirm the resend within " + std::to_string(confirm_timeout.count()) + " ms";
      break;
    }
    std::optional<BrokerEvent> event = connection.NextEvent(left);
    if (!event) continue;
    if (const auto* returned = std::get_if<ReturnedMessage>(&*event)) {
      failure = "queue '" + found->queue + "' does not exist (" + returned->reply_text + ")";
    } else if (const auto* confirm = std::get_if<PublishConfirm>(&*event)) {
      if (confirm->tag == publish_tag || (confirm->multiple && confirm->tag > publish_tag)) {
        if (!confirm->ack) failure = "the broker refused the resend (basic.nack)";
        confirmed = true;
      }
    }
  }
  if (!failure.empty()) {
    put_back();
    throw DeadLetterError("resending message '" + std::string(message_id) + "' to queue '" + found->queue +
                          "': " + failure + "; it stays in '" + std::string(queue) + "'");
  }
  passed.pop_back();
  connection.Ack(found_tag);
  put_back();
  return std::move(*found);
}

}  // namespace workflowd
