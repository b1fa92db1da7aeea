#pragma once

// Text for people: bytes from the wire made safe to print, and times in UTC.

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace workflowd {

// Queue names, tags, reasons and bodies come from the wire: they may hold invalid UTF-8 and
// control characters meant for a terminal. Each function returns valid UTF-8, every invalid
// byte replaced by U+FFFD.

// What a control character (C0, DEL, C1; one UTF-8 encoded character) becomes.
using ControlReplacement = std::string_view (*)(std::string_view character);
std::string CleanText(std::string_view text, ControlReplacement replace);

// For a terminal: control characters (newlines included) become spaces.
std::string CellText(std::string_view text);

// For RapidJSON, which escapes control characters itself but writes bytes as they are.
std::string JsonText(std::string_view text);

// The number of characters of valid UTF-8 text.
std::size_t CharacterCount(std::string_view utf8);

// The first max_chars characters of text, cleaned for a terminal, with "…" when cut.
std::string Excerpt(std::string_view text, std::size_t max_chars);

// Left-aligned columns two spaces apart; every cell is cleaned for a terminal and an empty one
// shows as "-".
class Table {
 public:
  explicit Table(std::vector<std::string> header) { Add(std::move(header)); }
  void Add(std::vector<std::string> row);
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// UTC, ISO 8601 to the second: 2024-05-01T12:34:56Z.
std::string FormatUtcSeconds(std::int64_t ms);

// UTC, ISO 8601 to the millisecond: 2024-05-01T12:34:56.789Z.
std::string FormatUtcMilliseconds(std::int64_t ms);

}  // namespace workflowd
