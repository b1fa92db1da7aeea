#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "metrics.hpp"

namespace workflowd {

// Writes the Prometheus text exposition format, version 0.0.4: a family's # HELP and # TYPE
// lines, then its samples, one per line, with label values and help text escaped as the
// format asks. Names are the caller's: they must already be valid metric and label names.
class PrometheusText {
 public:
  using Label = std::pair<std::string_view, std::string_view>;
  using Labels = std::span<const Label>;

  // The content type of what Take() returns, for an HTTP response.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts a family; type is counter, gauge or histogram.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, Labels labels, std::uint64_t value);
  void Sample(std::string_view name, Labels labels, std::int64_t value);
  // <name>_bucket{...,le="..."} for every bound and +Inf (cumulative), then <name>_sum in
  // seconds and <name>_count.
  void Histogram(std::string_view name, Labels labels, const LatencyHistogram::Snapshot& snapshot);

  std::string Take() { return std::move(text_); }

 private:
  void Labelled(std::string_view name, Labels labels, std::string_view le = {});

  std::string text_;
};

}  // namespace workflowd
