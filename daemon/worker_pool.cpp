#include "worker_pool.hpp"


namespace workflowd {

WorkerPool::WorkerPool(unsigned threads, HandlerRunner& runner, Mailbox& mailbox)
    : runner_(runner), mailbox_(mailbox) {
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
    mailbox_.Post(runner_.Handle(std::move(*job), generation_));
  }
}

}  // namespace workflowd
