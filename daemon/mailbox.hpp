#pragma once

#include <mutex>
#include <vector>

#include "settlement.hpp"

namespace workflowd {

// Carries settlements and flush requests from worker threads to the I/O thread, and wakes it
// through an eventfd it polls next to the broker socket. One wake-up covers every post made
// before the I/O thread takes them, so a busy daemon does not pay a syscall per message.
class Mailbox {
 public:
  Mailbox();
  ~Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  void Post(Settlement&& settlement);
  // False once the mailbox is closed: nobody will publish the request.
  [[nodiscard]] bool Post(FlushRequest* flush);

  // Refuses further flush requests; returns those not yet taken.
  std::vector<FlushRequest*> Close();

  // For the I/O thread: the descriptor to poll, and everything posted so far (appended).
  int fd() const { return event_fd_; }
  void TakeAll(std::vector<Settlement>& settlements, std::vector<FlushRequest*>& flushes);

 private:
  void WakeLocked();

  std::mutex mutex_;
  std::vector<Settlement> settlements_;
  std::vector<FlushRequest*> flushes_;
  bool wake_pending_ = false;
  bool closed_ = false;
  int event_fd_;
};

}  // namespace workflowd
