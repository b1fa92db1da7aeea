#pragma once

// The handler-to-handler latency of one queue hop, carried in the message itself. The latency
// phase's bodies hold two placeholder fields,
//   "hop_sent":"0000000000000000000","hop_received":"0000000000000000000"
// The first stage writes the time it sends the message on into hop_sent, the second stage the
// time it starts on it into hop_received. Both are steady-clock readings (CLOCK_MONOTONIC, one
// clock for every process on the host), so hop_received - hop_sent is the hop: the first
// stage's flush, the publish, the broker, the delivery and the hand-off to the second stage.
//
// The digits have a fixed width so that bare_relay, which does not parse JSON, can write them in
// place; workflowd's benchmark plugins write the same text through the SDK, so both sides carry
// bodies of the same size.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace workflowd::bench {

inline constexpr std::string_view kHopSent = "hop_sent";
inline constexpr std::string_view kHopReceived = "hop_received";
// How each appears in a body, up to its digits.
inline constexpr std::string_view kHopSentPrefix = "\"hop_sent\":\"";
inline constexpr std::string_view kHopReceivedPrefix = "\"hop_received\":\"";
// Any non-negative int64 nanosecond count fits.
inline constexpr std::size_t kStampDigits = 19;

// Nanoseconds on the steady clock: what every stamp of the benchmark carries ("t", the hop
// fields) and what arrivals are timed with.
inline std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ns as kStampDigits decimal digits, zero-padded.
inline std::array<char, kStampDigits> StampDigits(std::int64_t ns) {
  std::array<char, kStampDigits> digits;
  auto value = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
  for (std::size_t i = kStampDigits; i-- > 0; value /= 10) digits[i] = static_cast<char>('0' + value % 10);
  return digits;
}

// Writes ns into a field of a workflow::Message (a template, so that bare_relay needs no SDK).
template <typename Message>
void SetStamp(Message& message, std::string_view field, std::int64_t ns) {
  const std::array<char, kStampDigits> digits = StampDigits(ns);
  message.Set(field, std::string_view(digits.data(), digits.size()));
}

}  // namespace workflowd::bench
