#include "crash_loop_guard.hpp"

#include <cstdint>
#include <cstdio>

#include <spdlog/spdlog.h>

namespace workflowd {
namespace {

// A message without an id is known by its body: 64-bit FNV-1a, stable across processes
// (std::hash is not promised to be).
std::string BodyKey(std::string_view body) {
  std::uint64_t hash = 14695981039346656037ull;
  for (char c : body) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  char text[24];
  std::snprintf(text, sizeof text, "body:%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace

CrashLoopGuard::CrashLoopGuard(StateStore& store, const Settings& settings) : store_(store), settings_(settings) {}

bool CrashLoopGuard::Guards(const std::string& queue) const {
  const auto found = settings_.queues.find(queue);
  return found == settings_.queues.end() || found->second.type == QueueType::kClassic;
}

CrashLoopGuard::Admission CrashLoopGuard::Admit(const std::string& queue, bool redelivered,
                                                std::string_view message_id, std::string_view body) {
  Admission admission;
  if (!redelivered || !Guards(queue)) return admission;
  std::string key = message_id.empty() ? BodyKey(body) : std::string(message_id);
  std::int64_t unfinished = 0;
  try {
    unfinished = store_.CountUnfinishedDelivery(queue, key);
  } catch (const StateStoreError& error) {
    spdlog::warn("queue {}: message {} redelivered, its deliveries not counted: {}", queue, key, error.what());
    return admission;
  }
  if (unfinished < static_cast<std::int64_t>(settings_.max_deliveries)) {
    spdlog::debug("queue {}: message {} redelivered; {} earlier delivery(ies) of it did not finish", queue, key,
                  unfinished);
    admission.key = std::move(key);
    return admission;
  }
  admission.refusal = "delivered " + std::to_string(unfinished) +
                      " times without its handler finishing (max_deliveries " +
                      std::to_string(settings_.max_deliveries) +
                      "): the process ended while the handler ran, which may be what crashes it";
  admission.key = std::move(key);
  return admission;
}

void CrashLoopGuard::Finished(const std::string& queue, const Admission& admission) {
  // A refused message's count stays (see the header).
  if (admission.key.empty() || !admission.refusal.empty()) return;
  try {
    store_.ForgetUnfinishedDeliveries(queue, admission.key);
  } catch (const StateStoreError& error) {
    spdlog::warn("queue {}: message {}: cannot forget its unfinished deliveries ({}); a later redelivery "
                 "may be dead-lettered early",
                 queue, admission.key, error.what());
  }
}

}  // namespace workflowd
