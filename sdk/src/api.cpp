#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

#include <cerrno>  // program_invocation_short_name
#include <utility>

#include <rapidjson/writer.h>

#include "runtime_slot.hpp"
#include "string_output.hpp"

namespace workflow {
namespace {

host::Runtime& RequireRuntime(std::string_view call) {
  host::Runtime* runtime = detail::runtime_slot.load(std::memory_order_acquire);
  if (runtime == nullptr) {
    throw Error(std::string(call) +
                " needs a host: call it from a handler run by workflowd, from a plugin's "
                "RegisterHandlers, or from a program that installed a runtime");
  }
  return *runtime;
}

// What send() enqueues outside a handler: a producer program's messages, per thread.
std::vector<OutgoingMessage>& ProducerOutbox() {
  thread_local std::vector<OutgoingMessage> outbox;
  return outbox;
}

std::vector<OutgoingMessage>& CurrentOutbox() {
  host::Invocation* invocation = host::Invocation::Current();
  return invocation != nullptr ? invocation->outbox() : ProducerOutbox();
}

// The body with MessageID and originator replaced by the given ones, in one pass.
std::string StampedBody(const rapidjson::Document& document, std::string_view message_id,
                        std::string_view originator) {
  std::string body;
  detail::StringOutput output{body};
  rapidjson::Writer<detail::StringOutput> writer(output);
  writer.StartObject();
  for (const auto& member : document.GetObject()) {
    std::string_view name(member.name.GetString(), member.name.GetStringLength());
    if (name == kMessageIdField || name == kOriginatorField) continue;
    if (!member.name.Accept(writer) || !member.value.Accept(writer)) {
      throw MessageError("the message cannot be written as JSON: field '" +
                         std::string(member.name.GetString(), member.name.GetStringLength()) +
                         "' holds a number that is not finite");
    }
  }
  writer.Key(kMessageIdField.data(), kMessageIdField.size());
  writer.String(message_id.data(), message_id.size());
  writer.Key(kOriginatorField.data(), kOriginatorField.size());
  writer.String(originator.data(), originator.size());
  writer.EndObject();
  return body;
}

}  // namespace

bool IsValidQueueName(std::string_view queue, std::string* reason) {
  auto refuse = [&](std::string why) {
    if (reason != nullptr) *reason = std::move(why);
    return false;
  };
  if (queue.empty()) return refuse("the queue name is empty");
  if (queue.size() > 255) return refuse("the queue name is longer than 255 bytes");
  if (queue.starts_with("amq.")) return refuse("names starting with 'amq.' belong to the broker");
  for (unsigned char c : queue) {
    if (c < 0x20 || c == 0x7f) return refuse("the queue name contains a control character");
  }
  return true;
}

void RegisterHandler(Handler handler, std::string_view queue) {
  RegisterHandler(std::move(handler), queue, HandlerOptions{});
}

void RegisterHandler(Handler handler, std::string_view queue, const HandlerOptions& options) {
  std::string reason;
  if (!IsValidQueueName(queue, &reason)) {
    throw RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                            "'): " + reason);
  }
  if (!handler.function) {
    throw RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                            "'): the handler function is empty");
  }
  host::Runtime* runtime = detail::runtime_slot.load(std::memory_order_acquire);
  if (runtime == nullptr) {
    throw RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                            "') was called outside RegisterHandlers: register handlers only "
                            "in the plugin's entry point, while the daemon loads it");
  }
  if (options.retry.max_attempts == 0) {
    throw RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                            "'): retry.max_attempts must be at least 1 (1 means no retry)");
  }
  runtime->RegisterHandler(std::move(handler), queue, options);
}

void send(const Message& message, std::string_view queue, std::string_view src_tag,
          std::string_view dest_tag, std::string_view provided_caller) {
  std::string reason;
  if (!IsValidQueueName(queue, &reason)) {
    throw MessageError("send to '" + std::string(queue) + "': " + reason);
  }
  std::string_view incident = message.incident_id();
  if (incident.empty()) {
    throw MessageError("send to '" + std::string(queue) +
                       "': the message has no IncidentID; every message belongs to an incident");
  }
  host::Invocation* invocation = host::Invocation::Current();
  std::string_view originator = provided_caller;
  if (originator.empty()) {
    originator = invocation != nullptr ? invocation->handler_name()
                                       : std::string_view(program_invocation_short_name);
  }
  OutgoingMessage outgoing{
      .queue = std::string(queue),
      .body = {},
      .message_id = host::NewMessageId(),
      .incident_id = std::string(incident),
      .originator = std::string(originator),
      .src_tag = std::string(src_tag),
      .dest_tag = std::string(dest_tag),
  };
  outgoing.body = StampedBody(message.json(), outgoing.message_id, originator);
  CurrentOutbox().push_back(std::move(outgoing));
}

std::string CreateIncident(std::string_view name, std::string_view kind, std::string_view comment) {
  if (kind.empty()) throw Error("CreateIncident: the kind is empty");
  return RequireRuntime("CreateIncident").CreateIncident(name, kind, comment);
}

void Complete(std::string_view incident_id) {
  RequireRuntime("Complete").EndIncident(incident_id, host::IncidentEnd::kComplete, {});
}

void Cancel(std::string_view incident_id, std::string_view reason) {
  RequireRuntime("Cancel").EndIncident(incident_id, host::IncidentEnd::kCancel, reason);
}

namespace Persist {
namespace {

std::string_view RunningHandler(std::string_view call) {
  host::Invocation* invocation = host::Invocation::Current();
  if (invocation == nullptr) {
    throw Error(std::string(call) + " is for handlers: records are kept per (incident, handler)");
  }
  return invocation->handler_name();
}

std::vector<Message> ToMessages(const std::vector<std::string>& records) {
  std::vector<Message> messages;
  messages.reserve(records.size());
  for (const std::string& record : records) messages.push_back(Message::Parse(record));
  return messages;
}

}  // namespace

void Put(std::string_view incident_id, const Message& record) {
  std::string_view handler = RunningHandler("Persist::Put");
  RequireRuntime("Persist::Put").PersistPut(incident_id, handler, record.ToJson());
}

std::vector<Message> Get(std::string_view incident_id) {
  std::string_view handler = RunningHandler("Persist::Get");
  return ToMessages(RequireRuntime("Persist::Get").PersistGet(incident_id, handler));
}

std::vector<Message> GetAll(std::string_view incident_id) {
  RunningHandler("Persist::GetAll");
  return ToMessages(RequireRuntime("Persist::GetAll").PersistGet(incident_id, {}));
}

}  // namespace Persist

void FlushMessages() {
  std::vector<OutgoingMessage>& outbox = CurrentOutbox();
  if (outbox.empty()) return;
  RequireRuntime("FlushMessages").Publish(outbox);
  outbox.clear();
}

namespace host {

std::size_t DiscardProducerMessages() noexcept {
  std::vector<OutgoingMessage>& outbox = ProducerOutbox();
  const std::size_t discarded = outbox.size();
  outbox.clear();
  return discarded;
}

}  // namespace host

}  // namespace workflow
