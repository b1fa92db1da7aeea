#include "mailbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace workflowd {

Mailbox::Mailbox() : event_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (event_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

Mailbox::~Mailbox() { close(event_fd_); }

void Mailbox::Post(Settlement&& settlement) {
  std::lock_guard lock(mutex_);
  settlements_.push_back(std::move(settlement));
  WakeLocked();
}

bool Mailbox::Post(FlushRequest* flush) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  flushes_.push_back(flush);
  WakeLocked();
  return true;
}

std::vector<FlushRequest*> Mailbox::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  return std::exchange(flushes_, {});
}

void Mailbox::WakeLocked() {
  if (wake_pending_) return;
  wake_pending_ = true;
  const std::uint64_t one = 1;
  // Cannot fail short of a counter overflow, which one pending wake-up rules out.
  [[maybe_unused]] ssize_t written = write(event_fd_, &one, sizeof one);
}

void Mailbox::TakeAll(std::vector<Settlement>& settlements, std::vector<FlushRequest*>& flushes) {
  std::lock_guard lock(mutex_);
  if (!wake_pending_) return;
  std::uint64_t count;
  [[maybe_unused]] ssize_t read_bytes = read(event_fd_, &count, sizeof count);
  wake_pending_ = false;
  if (settlements.empty()) {
    settlements.swap(settlements_);
  } else {
    for (auto& settlement : settlements_) settlements.push_back(std::move(settlement));
    settlements_.clear();
  }
  flushes.insert(flushes.end(), flushes_.begin(), flushes_.end());
  flushes_.clear();
}

}  // namespace workflowd
