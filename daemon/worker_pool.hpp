#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "blocking_queue.hpp"
#include "mailbox.hpp"
#include "run_handler.hpp"
#include "settlement.hpp"

namespace workflowd {

// N threads that run handlers. Jobs come in through SubmitAll; each result goes to the mailbox.
class WorkerPool {
 public:
  WorkerPool(unsigned threads, HandlerRunner& runner, Mailbox& mailbox);
  ~WorkerPool() { Stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Hands every job over at once and leaves jobs empty.
  void SubmitAll(std::vector<Job>& jobs) { jobs_.PushAll(jobs); }

  // Jobs of older connections still queued are skipped: the broker delivers them again.
  void set_generation(std::uint32_t generation) { generation_.store(generation, std::memory_order_relaxed); }

  // Drops the queued jobs, lets running handlers finish, joins. Idempotent.
  void Stop();

 private:
  void Work();

  HandlerRunner& runner_;
  Mailbox& mailbox_;
  BlockingQueue<Job> jobs_;
  std::atomic<std::uint32_t> generation_{0};
  std::vector<std::jthread> threads_;
};

}  // namespace workflowd
