#pragma once

// The benchmark's own side of the broker: declaring the pipeline's queues as workflowd does,
// loading numbered messages into the input (all at once, or at a paced rate), and collecting
// them from the output with their arrival times. Bodies look like what a producer sends:
//   {"IncidentID":"<uuid>","seq":<n>,"t":<steady-clock ns at publish, 0 for a backlog>}
// and workflowd passes seq and t through (it only adds fields). Paced bodies also carry the hop
// fields of hop_stamp.hpp, which the two stages fill in on the way.

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hop_stamp.hpp"

namespace workflowd::bench {

using Clock = std::chrono::steady_clock;

// One connection to 127.0.0.1 as guest, one channel, optionally in publisher-confirm mode.
// Throws std::runtime_error on any failure. Not thread-safe.
class Connection {
 public:
  Connection(std::uint16_t port, const std::string& vhost, bool confirms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t get() const { return state_; }
  // A durable queue with the arguments workflowd gives its queues (dead-lettering to
  // workflowd.dead-letter; quorum when asked), so that the daemon's own declaration matches.
  void DeclareQueue(const std::string& queue, bool quorum);
  void CheckRpc(std::string_view what);

 private:
  amqp_connection_state_t state_;
};

// Publishes persistent messages on a confirm-mode connection, keeping at most `window`
// unconfirmed; confirms are read between publishes without blocking.
class ConfirmedPublisher {
 public:
  ConfirmedPublisher(Connection& connection, std::size_t window) : connection_(connection), window_(window) {}
  void Publish(const std::string& queue, std::string_view body);
  // Reads the confirms that have arrived, waiting up to timeout for the first one.
  void Poll(std::chrono::milliseconds timeout);
  // Returns once every publish is confirmed; throws after timeout.
  void WaitAll(std::chrono::milliseconds timeout);
  std::uint64_t unconfirmed() const { return published_ - confirmed_; }

 private:
  Connection& connection_;
  std::size_t window_;
  std::uint64_t published_ = 0;
  std::uint64_t confirmed_ = 0;  // every tag up to this one is confirmed
};

// The body of message seq for one of the incidents; with the hop fields when t_ns is not 0.
std::string NumberedBody(std::uint64_t seq, const std::vector<std::string>& incidents, std::int64_t t_ns);

// Publishes seq [first, first + count) to queue as fast as confirms allow.
void Preload(std::uint16_t port, const std::string& vhost, const std::string& queue, std::uint64_t first,
             std::uint64_t count, const std::vector<std::string>& incidents);

// Publishes seq [first, first + count) at `rate` messages/s, each stamped with its publish time.
// Returns the achieved rate.
double PublishPaced(Connection& connection, const std::string& queue, std::uint64_t first, std::uint64_t count,
                    double rate, const std::vector<std::string>& incidents);

// Consumes a queue (auto-ack) on a thread of its own and records when each seq of
// [first, first + count) first arrived; other seqs count as strays.
class Collector {
 public:
  // Returns once the consumer is attached.
  Collector(std::uint16_t port, const std::string& vhost, const std::string& queue, std::uint64_t first,
            std::uint64_t count);
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Distinct seqs of the range that have arrived.
  std::uint64_t arrived() const { return arrived_.load(std::memory_order_acquire); }
  // When the last seq of the range arrived (NowNs clock); 0 until then.
  std::int64_t done_ns() const { return done_ns_.load(std::memory_order_acquire); }
  // Arrival time of seq (NowNs clock), 0 while it has not arrived.
  std::int64_t arrival(std::uint64_t seq) const { return arrivals_[seq - first_].load(std::memory_order_acquire); }
  // Its publish stamp ("t"), valid once it arrived.
  std::int64_t stamp(std::uint64_t seq) const { return stamps_[seq - first_].load(std::memory_order_acquire); }
  // Its hop from the first stage's send to the second stage's start (hop_stamp.hpp), in ns;
  // -1 when the body did not carry both stamps. Valid once it arrived.
  std::int64_t hop(std::uint64_t seq) const { return hops_[seq - first_].load(std::memory_order_acquire); }
  std::uint64_t duplicates() const { return duplicates_.load(); }
  std::uint64_t strays() const { return strays_.load(); }
  // Stops consuming and joins the thread; rethrows what failed there.
  void Stop();

 private:
  void Consume(std::uint16_t port, std::string vhost, std::string queue);

  std::uint64_t first_;
  std::uint64_t count_;
  std::vector<std::atomic<std::int64_t>> arrivals_;
  std::vector<std::atomic<std::int64_t>> stamps_;
  std::vector<std::atomic<std::int64_t>> hops_;
  std::atomic<std::uint64_t> arrived_{0};
  std::atomic<std::int64_t> done_ns_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::uint64_t> strays_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> failed_{false};  // error_ is set
  std::string error_;
  std::thread thread_;
};

}  // namespace workflowd::bench
