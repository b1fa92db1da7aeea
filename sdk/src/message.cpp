#include <workflow/errors.hpp>
#include <workflow/message.hpp>

#include <cmath>
#include <utility>

#include <rapidjson/error/en.h>
#include <rapidjson/writer.h>

#include "string_output.hpp"

namespace workflow {
namespace {

rapidjson::Value::StringRefType Ref(std::string_view text) {
  return {text.data(), static_cast<rapidjson::SizeType>(text.size())};
}

// Finds a member by a name of known length: the const char* overload of FindMember would
// measure the name with strlen, reading past a string_view and stopping at an escaped NUL.
auto FindField(const rapidjson::Value& object, std::string_view key) {
  return object.FindMember(rapidjson::Value(Ref(key)));
}
auto FindField(rapidjson::Value& object, std::string_view key) {
  return object.FindMember(rapidjson::Value(Ref(key)));
}

// Whether every number in value is finite: RapidJSON reads 1e400 as infinity, which no JSON
// writer can write back. Depth is bounded by CheckDepthAndSurrogates.
bool AllNumbersFinite(const rapidjson::Value& value) {
  if (value.IsDouble()) return std::isfinite(value.GetDouble());
  if (value.IsArray()) {
    for (const auto& element : value.GetArray()) {
      if (!AllNumbersFinite(element)) return false;
    }
  }
  if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      if (!AllNumbersFinite(member.value)) return false;
    }
  }
  return true;
}

std::string_view StringField(const rapidjson::Document& document, std::string_view key) noexcept {
  if (!document.IsObject()) return {};
  auto member = FindField(document, key);
  if (member == document.MemberEnd() || !member->value.IsString()) return {};
  return {member->value.GetString(), member->value.GetStringLength()};
}

// Nesting deeper than this is refused: writing a document out (send, ToJson) recurses once per
// level, so a hostile body could overflow the stack of the thread that handles it.
constexpr int kMaxNestingDepth = 512;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The \uXXXX escape starting at body[i] ('\\'), or -1 when it is not one.
long UnicodeEscapeAt(std::string_view body, std::size_t i) {
  if (i + 6 > body.size() || body[i + 1] != 'u') return -1;
  long value = 0;
  for (std::size_t k = i + 2; k < i + 6; ++k) {
    int digit = HexValue(body[k]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// What RapidJSON 1.1 lets through and must not reach a handler: nesting deeper than
// kMaxNestingDepth, and a lone UTF-16 surrogate escape (it decodes to bytes that are not UTF-8).
// One pass over the body; everything else is left to the parser.
void CheckDepthAndSurrogates(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '"') {
        in_string = false;
      } else if (c == '\\') {
        const long unit = UnicodeEscapeAt(body, i);
        if (unit >= 0xD800 && unit <= 0xDBFF) {
          const long low = i + 6 < body.size() && body[i + 6] == '\\' ? UnicodeEscapeAt(body, i + 6) : -1;
          if (low < 0xDC00 || low > 0xDFFF) {
            throw MessageError("body is not valid JSON: a UTF-16 high surrogate escape without its low half");
          }
          i += 11;
        } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
          throw MessageError("body is not valid JSON: a lone UTF-16 low surrogate escape");
        } else {
          ++i;  // skips the escaped character, so an escaped quote does not end the string
        }
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxNestingDepth) {
        throw MessageError("body is nested deeper than " + std::to_string(kMaxNestingDepth) + " levels");
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
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
  CheckDepthAndSurrogates(body);
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
  if (!AllNumbersFinite(message.document_)) {
    throw MessageError("body holds a number beyond the range of a double");
  }
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
  return FindField(document_, key) != document_.MemberEnd();
}

const rapidjson::Value& Message::Get(std::string_view key) const {
  auto member = FindField(document_, key);
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
  auto member = FindField(document_, key);
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
  // Set() can store what JSON cannot express (a number that is not finite).
  if (!document_.Accept(writer)) {
    throw MessageError("the message cannot be written as JSON: it holds a number that is not finite");
  }
  return json;
}

}  // namespace workflow
