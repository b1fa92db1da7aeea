#include "bench_amqp.hpp"

#include <amqp_tcp_socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace workflowd::bench {
namespace {

amqp_bytes_t Bytes(std::string_view text) { return {text.size(), const_cast<char*>(text.data())}; }

void CheckStatus(int status, std::string_view what) {
  if (status != AMQP_STATUS_OK) {
    throw std::runtime_error(std::string(what) + ": " + amqp_error_string2(status));
  }
}

// The integer right after `key` in a JSON body (the key's text ends where its digits start), or -1.
std::int64_t FieldAfter(std::string_view body, std::string_view key) {
  std::size_t at = body.find(key);
  if (at == std::string_view::npos) return -1;
  const char* first = body.data() + at + key.size();
  std::int64_t value = -1;
  std::from_chars(first, body.data() + body.size(), value);
  return value;
}

// The hop stamped into a body, or -1 where a stamp is missing.
std::int64_t HopOf(std::string_view body) {
  const std::int64_t sent = FieldAfter(body, kHopSentPrefix);
  const std::int64_t received = FieldAfter(body, kHopReceivedPrefix);
  return sent > 0 && received > 0 ? received - sent : -1;
}

timeval ToTimeval(std::chrono::microseconds wait) {
  return timeval{static_cast<time_t>(wait.count() / 1000000), static_cast<suseconds_t>(wait.count() % 1000000)};
}

}  // namespace

Connection::Connection(std::uint16_t port, const std::string& vhost, bool confirms)
    : state_(amqp_new_connection()) {
  amqp_socket_t* socket = amqp_tcp_socket_new(state_);
  if (socket == nullptr) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("cannot create a socket");
  }
  int status = amqp_socket_open(socket, "127.0.0.1", port);
  if (status != AMQP_STATUS_OK) {
    amqp_destroy_connection(state_);
    throw std::runtime_error(std::string("connecting to the broker: ") + amqp_error_string2(status));
  }
  amqp_rpc_reply_t login =
      amqp_login(state_, vhost.c_str(), 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("cannot log in to vhost " + vhost);
  }
  try {
    amqp_channel_open(state_, 1);
    CheckRpc("opening a channel");
    if (confirms) {
      amqp_confirm_select(state_, 1);
      CheckRpc("turning on publisher confirms");
    }
  } catch (...) {
    amqp_destroy_connection(state_);
    throw;
  }
}

Connection::~Connection() {
  amqp_channel_close(state_, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
}

void Connection::CheckRpc(std::string_view what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  std::string text = std::string(what) + " failed: ";
  if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    text += amqp_error_string2(reply.library_error);
  } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
    text += std::string(static_cast<const char*>(close->reply_text.bytes), close->reply_text.len);
  } else if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
    text += std::string(static_cast<const char*>(close->reply_text.bytes), close->reply_text.len);
  } else {
    text += "unexpected reply";
  }
  throw std::runtime_error(text);
}

void Connection::DeclareQueue(const std::string& queue, bool quorum) {
  // As workflowd's AmqpConnection::DeclareQueue, with the config's default dead-letter queue.
  std::array<amqp_table_entry_t, 3> entries{};
  int count = 0;
  auto add = [&](const char* key, const char* value) {
    entries[count].key = amqp_cstring_bytes(key);
    entries[count].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[count].value.value.bytes = amqp_cstring_bytes(value);
    ++count;
  };
  if (quorum) add("x-queue-type", "quorum");
  add("x-dead-letter-exchange", "");
  add("x-dead-letter-routing-key", "workflowd.dead-letter");
  amqp_queue_declare(state_, 1, Bytes(queue), 0, /*durable=*/1, 0, 0, amqp_table_t{count, entries.data()});
  CheckRpc("declaring queue " + queue);
}

void ConfirmedPublisher::Publish(const std::string& queue, std::string_view body) {
  while (unconfirmed() >= window_) Poll(std::chrono::seconds(30));
  amqp_basic_properties_t properties{};
  properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  properties.content_type = amqp_cstring_bytes("application/json");
  properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  CheckStatus(amqp_basic_publish(connection_.get(), 1, amqp_empty_bytes, Bytes(queue), /*mandatory=*/1, 0,
                                 &properties, Bytes(body)),
              "publishing to " + queue);
  ++published_;
}

void ConfirmedPublisher::Poll(std::chrono::milliseconds timeout) {
  amqp_connection_state_t state = connection_.get();
  bool first = true;
  for (;;) {
    amqp_maybe_release_buffers(state);
    amqp_frame_t frame;
    timeval wait = ToTimeval(first ? std::chrono::microseconds(timeout) : std::chrono::microseconds(0));
    first = false;
    int status = amqp_simple_wait_frame_noblock(state, &frame, &wait);
    if (status == AMQP_STATUS_TIMEOUT) return;
    CheckStatus(status, "reading confirms");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
        // Confirms of one channel arrive in order in practice; a single ack past a gap would
        // only make the window wait longer, never lose a message.
        if (ack->multiple != 0 || ack->delivery_tag == confirmed_ + 1) {
          confirmed_ = std::max(confirmed_, ack->delivery_tag);
        }
        break;
      }
      case AMQP_BASIC_NACK_METHOD:
        throw std::runtime_error("the broker refused a preloaded message (basic.nack)");
      case AMQP_BASIC_RETURN_METHOD:
        throw std::runtime_error("a preloaded message was returned: no such queue");
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        throw std::runtime_error("the broker closed the publishing channel");
      default:
        break;
    }
  }
}

void ConfirmedPublisher::WaitAll(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (unconfirmed() > 0) {
    if (Clock::now() >= deadline) {
      throw std::runtime_error(std::to_string(unconfirmed()) + " publishes unconfirmed after " +
                               std::to_string(timeout.count()) + " ms");
    }
    Poll(std::chrono::milliseconds(100));
  }
}

std::string NumberedBody(std::uint64_t seq, const std::vector<std::string>& incidents, std::int64_t t_ns) {
  std::string body;
  body.reserve(160);
  body += "{\"IncidentID\":\"";
  body += incidents[seq % incidents.size()];
  body += "\",\"seq\":";
  body += std::to_string(seq);
  body += ",\"t\":";
  body += std::to_string(t_ns);
  if (t_ns != 0) {
    const std::string zeros(kStampDigits, '0');
    for (std::string_view prefix : {kHopSentPrefix, kHopReceivedPrefix}) {
      body += ',';
      body += prefix;
      body += zeros;
      body += '"';
    }
  }
  body += '}';
  return body;
}

void Preload(std::uint16_t port, const std::string& vhost, const std::string& queue, std::uint64_t first,
             std::uint64_t count, const std::vector<std::string>& incidents) {
  Connection connection(port, vhost, true);
  ConfirmedPublisher publisher(connection, 4000);
  for (std::uint64_t seq = first; seq < first + count; ++seq) {
    publisher.Publish(queue, NumberedBody(seq, incidents, 0));
    if ((seq & 255) == 0) publisher.Poll(std::chrono::milliseconds(0));
  }
  publisher.WaitAll(std::chrono::minutes(5));
}

double PublishPaced(Connection& connection, const std::string& queue, std::uint64_t first, std::uint64_t count,
                    double rate, const std::vector<std::string>& incidents) {
  ConfirmedPublisher publisher(connection, 100000);
  const std::int64_t start = NowNs();
  std::uint64_t sent = 0;
  while (sent < count) {
    const std::int64_t now = NowNs();
    const auto due = std::min<std::uint64_t>(
        count, static_cast<std::uint64_t>(std::floor(rate * static_cast<double>(now - start) / 1e9)) + 1);
    for (; sent < due; ++sent) publisher.Publish(queue, NumberedBody(first + sent, incidents, NowNs()));
    // Read confirms while waiting for the next message's turn.
    const double next_ns = static_cast<double>(start) + static_cast<double>(sent) * 1e9 / rate;
    const auto wait_us = static_cast<std::int64_t>((next_ns - static_cast<double>(NowNs())) / 1000);
    if (wait_us > 0) {
      publisher.Poll(std::chrono::milliseconds(0));
      const std::int64_t left_us = static_cast<std::int64_t>((next_ns - static_cast<double>(NowNs())) / 1000);
      if (left_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(left_us));
    }
  }
  const double elapsed = static_cast<double>(NowNs() - start) / 1e9;
  publisher.WaitAll(std::chrono::seconds(60));
  return static_cast<double>(count) / elapsed;
}

Collector::Collector(std::uint16_t port, const std::string& vhost, const std::string& queue,
                     std::uint64_t first, std::uint64_t count)
    : first_(first), count_(count), arrivals_(count), stamps_(count), hops_(count) {
  thread_ = std::thread([this, port, vhost, queue] { Consume(port, vhost, queue); });
  while (!ready_.load() && !failed_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!ready_.load()) {
    thread_.join();
    throw std::runtime_error("collector: " + error_);
  }
}

Collector::~Collector() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Collector::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (!error_.empty()) throw std::runtime_error("collector: " + error_);
}

void Collector::Consume(std::uint16_t port, std::string vhost, std::string queue) {
  try {
    Connection connection(port, vhost, false);
    amqp_connection_state_t state = connection.get();
    amqp_basic_consume(state, 1, Bytes(queue), amqp_empty_bytes, 0, /*no_ack=*/1, 0, amqp_empty_table);
    connection.CheckRpc("consuming " + queue);
    ready_ = true;
    while (!stop_.load(std::memory_order_relaxed)) {
      amqp_maybe_release_buffers(state);
      amqp_envelope_t envelope;
      timeval wait{0, 100 * 1000};
      amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, &wait, 0);
      if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) {
        continue;
      }
      if (reply.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error("consuming " + queue + " failed");
      const std::int64_t now = NowNs();
      std::string_view body(static_cast<const char*>(envelope.message.body.bytes), envelope.message.body.len);
      const std::int64_t seq = FieldAfter(body, "\"seq\":");
      const std::int64_t stamp = FieldAfter(body, "\"t\":");
      const std::int64_t hop = HopOf(body);
      amqp_destroy_envelope(&envelope);
      if (seq < 0 || static_cast<std::uint64_t>(seq) < first_ || static_cast<std::uint64_t>(seq) - first_ >= count_) {
        strays_.fetch_add(1);
        continue;
      }
      const std::uint64_t index = static_cast<std::uint64_t>(seq) - first_;
      if (arrivals_[index].load(std::memory_order_relaxed) != 0) {
        duplicates_.fetch_add(1);
        continue;
      }
      stamps_[index].store(stamp, std::memory_order_relaxed);
      hops_[index].store(hop, std::memory_order_relaxed);
      arrivals_[index].store(now, std::memory_order_release);
      if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
        done_ns_.store(now, std::memory_order_release);
      }
    }
  } catch (const std::exception& error) {
    error_ = error.what();
    failed_ = true;
  }
}

}  // namespace workflowd::bench
