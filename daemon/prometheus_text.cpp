#include "prometheus_text.hpp"

namespace workflowd {
namespace {

// Label values escape backslash, double quote and newline; help text only backslash and
// newline.
void AppendEscaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// Microseconds as seconds, exactly: 1500 -> "0.0015", 2000000 -> "2".
std::string Seconds(std::uint64_t us) {
  std::string text = std::to_string(us / 1000000);
  if (const std::uint64_t fraction = us % 1000000; fraction != 0) {
    std::string digits = std::to_string(fraction);
    digits.insert(0, 6 - digits.size(), '0');
    digits.erase(digits.find_last_not_of('0') + 1);
    text += "." + digits;
  }
  return text;
}

}  // namespace

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  AppendEscaped(text_, help, false);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void PrometheusText::Labelled(std::string_view name, Labels labels, std::string_view le) {
  text_ += name;
  if (labels.empty() && le.empty()) return;
  char separator = '{';
  for (const auto& [label, value] : labels) {
    text_ += separator;
    text_ += label;
    text_ += "=\"";
    AppendEscaped(text_, value, true);
    text_ += '"';
    separator = ',';
  }
  if (!le.empty()) {
    text_ += separator;
    text_ += "le=\"";
    text_ += le;
    text_ += '"';
  }
  text_ += '}';
}

void PrometheusText::Sample(std::string_view name, Labels labels, std::uint64_t value) {
  Labelled(name, labels);
  text_ += ' ';
  text_ += std::to_string(value);
  text_ += '\n';
}

void PrometheusText::Sample(std::string_view name, Labels labels, std::int64_t value) {
  Labelled(name, labels);
  text_ += ' ';
  text_ += std::to_string(value);
  text_ += '\n';
}

void PrometheusText::Histogram(std::string_view name, Labels labels,
                               const LatencyHistogram::Snapshot& snapshot) {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    cumulative += snapshot.counts[i];
    const bool last = i == LatencyHistogram::kBoundsUs.size();
    Labelled(bucket, labels, last ? "+Inf" : Seconds(LatencyHistogram::kBoundsUs[i]));
    text_ += ' ';
    text_ += std::to_string(cumulative);
    text_ += '\n';
  }
  Labelled(std::string(name) + "_sum", labels);
  text_ += ' ';
  text_ += Seconds(snapshot.sum_us);
  text_ += '\n';
  Sample(std::string(name) + "_count", labels, cumulative);
}

}  // namespace workflowd
