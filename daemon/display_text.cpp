#include "display_text.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace workflowd {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence (RFC 3629) text starts with, 0 if it does not.
std::size_t ValidSequenceLength(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char second_min = 0x80;  // the second byte's range excludes overlong forms,
  unsigned char second_max = 0xBF;  // surrogates and code points above U+10FFFF
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  }
  if (length == 0 || length > text.size() || byte(1) < second_min || byte(1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

// C0 controls, DEL and C1 controls (U+0080..U+009F), given one UTF-8 encoded character.
bool IsControl(std::string_view character) {
  const auto first = static_cast<unsigned char>(character[0]);
  if (character.size() == 1) return first < 0x20 || first == 0x7F;
  return character.size() == 2 && first == 0xC2 && static_cast<unsigned char>(character[1]) < 0xA0;
}

}  // namespace

std::string CleanText(std::string_view text, ControlReplacement replace) {
  std::string clean;
  clean.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = ValidSequenceLength(text);
    if (length == 0) {
      clean += kReplacementCharacter;
      text.remove_prefix(1);
      continue;
    }
    const std::string_view character = text.substr(0, length);
    clean += IsControl(character) ? replace(character) : character;
    text.remove_prefix(length);
  }
  return clean;
}

std::string CellText(std::string_view text) {
  return CleanText(text, [](std::string_view) { return std::string_view(" "); });
}

std::string JsonText(std::string_view text) {
  return CleanText(text, [](std::string_view character) { return character; });
}

std::size_t CharacterCount(std::string_view utf8) {
  return static_cast<std::size_t>(
      std::count_if(utf8.begin(), utf8.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string Excerpt(std::string_view text, std::size_t max_chars) {
  const std::string clean = CellText(text);
  if (CharacterCount(clean) <= max_chars) return clean;
  std::size_t end = 0;
  for (std::size_t kept = 0; kept < max_chars - 1; ++kept) {
    end += ValidSequenceLength(std::string_view(clean).substr(end));
  }
  return clean.substr(0, end) + "…";
}

void Table::Add(std::vector<std::string> row) {
  for (std::string& cell : row) cell = cell.empty() ? "-" : CellText(cell);
  rows_.push_back(std::move(row));
}

void Table::Print(std::ostream& out) const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t column = 0; column < row.size(); ++column) {
      widths[column] = std::max(widths[column], CharacterCount(row[column]));
    }
  }
  for (const auto& row : rows_) {
    for (std::size_t column = 0; column < row.size(); ++column) {
      out << row[column];
      if (column + 1 < row.size()) out << std::string(widths[column] - CharacterCount(row[column]) + 2, ' ');
    }
    out << "\n";
  }
}

std::string FormatUtcSeconds(std::int64_t ms) {
  const std::time_t seconds = std::chrono::floor<std::chrono::seconds>(std::chrono::milliseconds(ms)).count();
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return std::string(text) + "Z";
}

std::string FormatUtcMilliseconds(std::int64_t ms) {
  std::string seconds = FormatUtcSeconds(ms);
  seconds.pop_back();  // the Z
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03d", static_cast<int>(((ms % 1000) + 1000) % 1000));
  return seconds + fraction + "Z";
}

}  // namespace workflowd
