// libFuzzer target: the bytes are the body of a delivery, as workflowd reads it before a
// handler runs. Message::Parse either refuses them with MessageError or returns an object; the
// getters then read it, and send() stamps and serialises it inside a host::Invocation, as a
// handler's send does. Only the documented exception, workflow::MessageError, is caught: any
// other escapes and is a crash, as is a broken invariant below (abort with the reason).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

namespace {

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz_message: invariant broken: %s\n", what);
  std::abort();
}

// A typed getter either returns or throws MessageError (a missing field, another type).
template <class Read>
void TryRead(Read read) {
  try {
    read();
  } catch (const workflow::MessageError&) {
  }
}

void ReadEveryField(const workflow::Message& message) {
  // Bounded, so that an input with thousands of members stays fast.
  int budget = 64;
  for (const auto& member : message.json().GetObject()) {
    if (--budget < 0) break;
    std::string_view key(member.name.GetString(), member.name.GetStringLength());
    Require(message.Has(key), "Has() misses a member of the object");
    TryRead([&] { message.GetString(key); });
    TryRead([&] { message.GetInt(key); });
    TryRead([&] { message.GetDouble(key); });
    TryRead([&] { message.GetBool(key); });
    message.Get(key);  // present, so it must not throw
  }
  TryRead([&] { message.GetString(workflow::kIncidentIdField); });
  TryRead([&] { message.GetInt("seq"); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  std::optional<workflow::Message> message;
  try {
    message = workflow::Message::Parse(body, "src", "dest");
  } catch (const workflow::MessageError&) {
    return 0;
  }
  Require(message->json().IsObject(), "Parse accepted a body that is not an object");
  Require(message->src_tag() == "src" && message->dest_tag() == "dest", "tags lost");
  const std::string_view incident = message->incident_id();
  message->message_id();
  message->originator();
  ReadEveryField(*message);
  Require(message->Clone().ToJson() == message->ToJson(), "Clone() differs from the original");

  workflow::host::Invocation invocation("fuzz_handler");
  try {
    workflow::send(*message, "fuzz_queue", "src", "dest");
  } catch (const workflow::MessageError&) {
    Require(incident.empty(), "send() refused a message with an IncidentID");
    return 0;
  }
  Require(!incident.empty(), "send() took a message without an IncidentID");
  Require(invocation.outbox().size() == 1, "send() did not enqueue exactly one message");
  const workflow::OutgoingMessage& sent = invocation.outbox().front();
  Require(sent.incident_id == incident, "the outgoing message has another IncidentID");

  // What send() publishes must be a body the next stage accepts, carrying the same incident
  // and the stamps.
  std::optional<workflow::Message> next;
  try {
    next = workflow::Message::Parse(sent.body);
  } catch (const workflow::MessageError& error) {
    std::fprintf(stderr, "fuzz_message: send() produced a body Parse refuses: %s\n", error.what());
    std::abort();
  }
  Require(next->incident_id() == incident, "the sent body has another IncidentID");
  Require(next->message_id() == sent.message_id, "the sent body lacks its MessageID");
  Require(next->originator() == "fuzz_handler", "the sent body lacks its originator");
  return 0;
}
