#pragma once

#include <thread>
#include <vector>

#include "blocking_queue.hpp"
#include "mailbox.hpp"
#include "settlement.hpp"

namespace workflowd {

// N threads that run handlers. Jobs come in through Submit; each result goes to the mailbox.
class WorkerPool {
 public:
  WorkerPool(unsigned threads, Mailbox& mailbox);
  ~WorkerPool();  // drops the queued jobs, lets running handlers finish, joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(Job&& job) { jobs_.Push(std::move(job)); }

 private:
  void Work();

  Mailbox& mailbox_;
  BlockingQueue<Job> jobs_;
  std::vector<std::jthread> threads_;
};

}  // namespace workflowd
