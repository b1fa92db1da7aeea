#include "worker_pool.hpp"

#include "run_handler.hpp"

namespace workflowd {

WorkerPool::WorkerPool(unsigned threads, Mailbox& mailbox) : mailbox_(mailbox) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

void WorkerPool::Stop() {
  jobs_.Close();
  threads_.clear();  // joins
}

void WorkerPool::Work() {
  while (std::optional<Job> job = jobs_.Pop()) {
    if (job->generation != generation_.load(std::memory_order_relaxed)) continue;
    mailbox_.Post(RunHandler(std::move(*job)));
  }
}

}  // namespace workflowd
