#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <amqp.h>

namespace workflowd::testing {

// AMQP headers as the tests see them: header name -> value as text.
using Headers = std::map<std::string, std::string>;

// A message taken from a queue by AmqpClient::Consume.
struct Delivery {
  std::string body;
  // String headers as they are; numbers and booleans as text; nested tables and arrays
  // (x-death) as "<table>" and "<array>".
  Headers headers;
  bool redelivered = false;
  std::string content_type;
  std::string message_id;
};

// A small synchronous AMQP client for tests, the other end of what workflowd sends and
// receives: one connection as guest, one channel in publisher-confirm mode, default exchange.
//
// Every failure throws std::runtime_error saying what was attempted and what the broker or
// rabbitmq-c answered. When the broker closes the channel (a missing queue, say) the client
// reopens it, so it stays usable; when the connection is lost, every later call throws.
// Not thread-safe, as the rabbitmq-c connection under it.
class AmqpClient {
 public:
  // Connects to 127.0.0.1:port and opens vhost. timeout bounds the connection handshake and
  // each later call (a broker that stops answering fails the test instead of hanging it).
  AmqpClient(std::uint16_t port, const std::string& vhost,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~AmqpClient();

  AmqpClient(const AmqpClient&) = delete;
  AmqpClient& operator=(const AmqpClient&) = delete;

  // A durable classic queue (idempotent).
  void DeclareQueue(const std::string& queue);

  // Publishes to the queue through the default exchange, as workflowd does: persistent,
  // content_type application/json, mandatory. Returns once the broker confirmed it; throws when
  // the broker refuses it or no queue of that name exists.
  void Publish(const std::string& queue, std::string_view body, const Headers& headers = {});

  // Takes up to count messages, waiting at most timeout for them to arrive, and acknowledges
  // them; the acknowledgements are settled when it returns. Returns what arrived, in order.
  std::vector<Delivery> Consume(const std::string& queue, std::size_t count,
                                std::chrono::milliseconds timeout);

  // Messages ready in the queue (not those delivered and unacknowledged). Throws when the
  // queue does not exist.
  std::size_t MessageCount(const std::string& queue);

  // Removes the ready messages of the queue; returns how many.
  std::size_t Purge(const std::string& queue);

 private:
  // The reply of the last RPC; throws, and repairs the channel when the broker closed it.
  void Check(const amqp_rpc_reply_t& reply, std::string_view what);
  // The broker closed the channel: acknowledge it and open a fresh one.
  void ReopenChannel();
  void OpenChannel();
  void WaitForConfirm(std::uint64_t tag, const std::string& queue);
  void RequireConnected() const;

  amqp_connection_state_t connection_ = nullptr;
  std::chrono::milliseconds timeout_;
  std::uint64_t published_ = 0;  // delivery tag of the last publish on this channel
  std::string lost_;             // why the connection is unusable; empty while it works
};

}  // namespace workflowd::testing
