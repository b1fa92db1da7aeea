#include <workflow/errors.hpp>
#include <workflow/message.hpp>

#include <utility>

#include <rapidjson/error/en.h>
#include <rapidjson/writer.h>

#include "string_output.hpp"

namespace workflow {
namespace {

rapidjson::Value::StringRefType Ref(std::string_view text) {
  return {text.data(), static_cast<rapidjson::SizeType>(text.size())};
}

std::string_view StringField(const rapidjson::Document& document, std::string_view key) noexcept {
  if (!document.IsObject()) return {};
  auto member = document.FindMember(Ref(key));
  if (member == document.MemberEnd() || !member->value.IsString()) return {};
  return {member->value.GetString(), member->value.GetStringLength()};
}

[[noreturn]] void ThrowFieldError(std::string_view key, std::string_view problem) {
  throw MessageError("message field '" + std::string(key) + "' " + std::string(problem));
}

}  // namespace

Message::Message() { document_.SetObject(); }

Message Message::ForIncident(std::string_view incident_id) {
  Message message;
  message.Set(kIncidentIdField, incident_id);
  return message;
}

Message Message::Parse(std::string_view body, std::string src_tag, std::string dest_tag) {
  Message message;
  message.src_tag_ = std::move(src_tag);
  message.dest_tag_ = std::move(dest_tag);
  // RapidJSON takes a NUL for the end of input even in a length-bounded parse, so it would
  // accept junk after one; JSON never contains a raw NUL.
  if (body.find('\0') != std::string_view::npos) {
    throw MessageError("body is not valid JSON: it contains a NUL byte");
  }
  // Iterative parsing keeps hostile nesting off the call stack; UTF-8 is checked as we go.
  // The length-bounded parse refuses anything after the object.
  constexpr unsigned kFlags = rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
  message.document_.Parse<kFlags>(body.data(), body.size());
  if (message.document_.HasParseError()) {
    throw MessageError("body is not valid JSON: " +
                       std::string(rapidjson::GetParseError_En(message.document_.GetParseError())) +
                       " at byte " + std::to_string(message.document_.GetErrorOffset()));
  }
  if (!message.document_.IsObject()) throw MessageError("body is JSON but not an object");
  return message;
}

Message::Message(Message&&) noexcept = default;
Message& Message::operator=(Message&&) noexcept = default;
Message::~Message() = default;

Message Message::Clone() const {
  Message copy;
  copy.document_.CopyFrom(document_, copy.document_.GetAllocator());
  copy.src_tag_ = src_tag_;
  copy.dest_tag_ = dest_tag_;
  return copy;
}

std::string_view Message::incident_id() const noexcept {
  return StringField(document_, kIncidentIdField);
}
std::string_view Message::message_id() const noexcept {
  return StringField(document_, kMessageIdField);
}
std::string_view Message::originator() const noexcept {
  return StringField(document_, kOriginatorField);
}

bool Message::Has(std::string_view key) const noexcept {
  return document_.FindMember(Ref(key)) != document_.MemberEnd();
}

const rapidjson::Value& Message::Get(std::string_view key) const {
  auto member = document_.FindMember(Ref(key));
  if (member == document_.MemberEnd()) ThrowFieldError(key, "is missing");
  return member->value;
}

std::string_view Message::GetString(std::string_view key) const {
  const auto& value = Get(key);
  if (!value.IsString()) ThrowFieldError(key, "is not a string");
  return {value.GetString(), value.GetStringLength()};
}

std::int64_t Message::GetInt(std::string_view key) const {
  const auto& value = Get(key);
  if (!value.IsInt64()) ThrowFieldError(key, "is not an integer");
  return value.GetInt64();
}

double Message::GetDouble(std::string_view key) const {
  const auto& value = Get(key);
  if (!value.IsNumber()) ThrowFieldError(key, "is not a number");
  return value.GetDouble();
}

bool Message::GetBool(std::string_view key) const {
  const auto& value = Get(key);
  if (!value.IsBool()) ThrowFieldError(key, "is not a boolean");
  return value.GetBool();
}

Message& Message::Set(std::string_view key, rapidjson::Value&& value) {
  auto member = document_.FindMember(Ref(key));
  if (member != document_.MemberEnd()) {
    member->value = std::move(value);
  } else {
    rapidjson::Value name(key.data(), static_cast<rapidjson::SizeType>(key.size()), allocator());
    document_.AddMember(name, value, allocator());
  }
  return *this;
}

Message& Message::Set(std::string_view key, std::string_view value) {
  return Set(key, rapidjson::Value(value.data(), static_cast<rapidjson::SizeType>(value.size()),
                                   allocator()));
}
Message& Message::Set(std::string_view key, std::int64_t value) {
  return Set(key, rapidjson::Value(value));
}
Message& Message::Set(std::string_view key, double value) {
  return Set(key, rapidjson::Value(value));
}
Message& Message::Set(std::string_view key, bool value) {
  return Set(key, rapidjson::Value(value));
}

std::string Message::ToJson() const {
  std::string json;
  detail::StringOutput output{json};
  rapidjson::Writer<detail::StringOutput> writer(output);
  document_.Accept(writer);
  return json;
}

}  // namespace workflow
