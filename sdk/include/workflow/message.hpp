#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <workflow/export.hpp>

namespace workflow {

// Wire names of the fields every message body carries (the VESTEC format).
inline constexpr std::string_view kIncidentIdField = "IncidentID";
inline constexpr std::string_view kMessageIdField = "MessageID";
inline constexpr std::string_view kOriginatorField = "originator";

// A workflow message: a JSON object with an IncidentID, plus the src/dest tags it was sent with.
//
// The body is a RapidJSON document; json() gives full access, and the typed getters below cover
// the common case with errors that name the missing field. A handler may change the message it
// was given and send it on: send() stamps a fresh MessageID and the originator into what it
// publishes without altering the message itself.
class WORKFLOW_API Message {
 public:
  // An empty JSON object.
  Message();
  // An object holding only {"IncidentID": incident_id}: the start of a new message.
  static Message ForIncident(std::string_view incident_id);
  // Parses a body. Throws MessageError when it is not valid UTF-8 JSON or not an object.
  static Message Parse(std::string_view body, std::string src_tag = {}, std::string dest_tag = {});

  Message(Message&&) noexcept;
  Message& operator=(Message&&) noexcept;
  Message(const Message&) = delete;  // documents are large; copy explicitly with Clone()
  Message& operator=(const Message&) = delete;
  ~Message();

  Message Clone() const;

  // The fields every message has; an empty view when absent or not a string.
  std::string_view incident_id() const noexcept;
  std::string_view message_id() const noexcept;
  std::string_view originator() const noexcept;
  // The tags the sender gave send(); empty when none.
  std::string_view src_tag() const noexcept { return src_tag_; }
  std::string_view dest_tag() const noexcept { return dest_tag_; }

  bool Has(std::string_view key) const noexcept;
  // Typed reads; each throws MessageError naming the field when it is absent or of another type.
  std::string_view GetString(std::string_view key) const;
  std::int64_t GetInt(std::string_view key) const;
  double GetDouble(std::string_view key) const;
  bool GetBool(std::string_view key) const;
  const rapidjson::Value& Get(std::string_view key) const;

  // Writes (adding or replacing) a field.
  Message& Set(std::string_view key, std::string_view value);
  Message& Set(std::string_view key, const char* value) { return Set(key, std::string_view(value)); }
  Message& Set(std::string_view key, std::int64_t value);
  Message& Set(std::string_view key, int value) { return Set(key, std::int64_t{value}); }
  Message& Set(std::string_view key, double value);
  Message& Set(std::string_view key, bool value);
  // Takes a value built with allocator().
  Message& Set(std::string_view key, rapidjson::Value&& value);

  rapidjson::Document& json() noexcept { return document_; }
  const rapidjson::Document& json() const noexcept { return document_; }
  rapidjson::Document::AllocatorType& allocator() noexcept { return document_.GetAllocator(); }

  // The body as compact JSON.
  std::string ToJson() const;

 private:
  rapidjson::Document document_;
  std::string src_tag_;
  std::string dest_tag_;
};

}  // namespace workflow
