#include "amqp_client.hpp"

#include <sys/time.h>

#include <amqp_tcp_socket.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace workflowd::testing {

namespace {

constexpr amqp_channel_t kChannel = 1;
// Consume polls an empty queue again after a quarter of the time it has waited so far, within
// these bounds: a message that comes quickly is seen quickly (the latency tests time it), and a
// long wait does not keep the broker busy.
constexpr std::chrono::milliseconds kMinGetPollInterval(1);
constexpr std::chrono::milliseconds kMaxGetPollInterval(20);

std::string ToString(amqp_bytes_t bytes) {
  return bytes.len == 0 ? std::string()
                        : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

amqp_bytes_t Bytes(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

timeval ToTimeval(std::chrono::microseconds duration) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(duration);
  return timeval{static_cast<time_t>(seconds.count()),
                 static_cast<suseconds_t>((duration - seconds).count())};
}

std::string FieldToString(const amqp_field_value_t& value) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return ToString(value.value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN: return value.value.boolean ? "true" : "false";
    case AMQP_FIELD_KIND_I8: return std::to_string(value.value.i8);
    case AMQP_FIELD_KIND_U8: return std::to_string(value.value.u8);
    case AMQP_FIELD_KIND_I16: return std::to_string(value.value.i16);
    case AMQP_FIELD_KIND_U16: return std::to_string(value.value.u16);
    case AMQP_FIELD_KIND_I32: return std::to_string(value.value.i32);
    case AMQP_FIELD_KIND_U32: return std::to_string(value.value.u32);
    case AMQP_FIELD_KIND_I64: return std::to_string(value.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: return std::to_string(value.value.u64);
    case AMQP_FIELD_KIND_F32: return std::to_string(value.value.f32);
    case AMQP_FIELD_KIND_F64: return std::to_string(value.value.f64);
    case AMQP_FIELD_KIND_TABLE: return "<table>";
    case AMQP_FIELD_KIND_ARRAY: return "<array>";
    default: return "<field kind " + std::to_string(value.kind) + ">";
  }
}

Delivery ToDelivery(const amqp_message_t& message, bool redelivered) {
  Delivery delivery;
  delivery.body = ToString(message.body);
  delivery.redelivered = redelivered;
  const amqp_basic_properties_t& props = message.properties;
  if (props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
    delivery.content_type = ToString(props.content_type);
  }
  if (props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) delivery.message_id = ToString(props.message_id);
  if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < props.headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = props.headers.entries[i];
      delivery.headers[ToString(entry.key)] = FieldToString(entry.value);
    }
  }
  return delivery;
}

// "NOT_FOUND - no queue 'x' in vhost 'v'" (code 404), from a channel or connection close.
std::string DescribeServerClose(const amqp_rpc_reply_t& reply) {
  if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
    return "broker closed the channel: " + ToString(close->reply_text) + " (code " +
           std::to_string(close->reply_code) + ")";
  }
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
    return "broker closed the connection: " + ToString(close->reply_text) + " (code " +
           std::to_string(close->reply_code) + ")";
  }
  return "unexpected broker method " + std::to_string(reply.reply.id);
}

}  // namespace

AmqpClient::AmqpClient(std::uint16_t port, const std::string& vhost,
                       std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  const std::string where = "127.0.0.1:" + std::to_string(port) + " vhost '" + vhost + "'";
  connection_ = amqp_new_connection();
  if (connection_ == nullptr) throw std::runtime_error("AMQP " + where + ": out of memory");
  // From here on the destructor does not run if we throw: release the connection ourselves.
  try {
    amqp_socket_t* socket = amqp_tcp_socket_new(connection_);
    if (socket == nullptr) throw std::runtime_error("AMQP " + where + ": cannot create a socket");
    timeval limit = ToTimeval(timeout_);
    amqp_set_handshake_timeout(connection_, &limit);
    amqp_set_rpc_timeout(connection_, &limit);
    const int status = amqp_socket_open_noblock(socket, "127.0.0.1", port, &limit);
    if (status != AMQP_STATUS_OK) {
      throw std::runtime_error("AMQP connect to " + where + ": " + amqp_error_string2(status));
    }
    // Heartbeats off: a test client is idle between calls, and nothing services them then.
    Check(amqp_login(connection_, vhost.c_str(), 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest",
                     "guest"),
          "AMQP login as guest to " + where);
    OpenChannel();
  } catch (...) {
    amqp_destroy_connection(connection_);
    throw;
  }
}

AmqpClient::~AmqpClient() {
  // Best effort: in fault tests the broker may already be gone, and then the replies are errors
  // that nobody could act on. Destroying the connection frees it in every case.
  if (lost_.empty()) {
    amqp_channel_close(connection_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(connection_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(connection_);
}

void AmqpClient::OpenChannel() {
  amqp_channel_open(connection_, kChannel);
  Check(amqp_get_rpc_reply(connection_), "channel.open");
  amqp_confirm_select(connection_, kChannel);
  Check(amqp_get_rpc_reply(connection_), "confirm.select");
  published_ = 0;  // delivery tags restart with each channel
}

void AmqpClient::ReopenChannel() {
  amqp_channel_close_ok_t close_ok{};
  const int status =
      amqp_send_method(connection_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
  if (status != AMQP_STATUS_OK) {
    lost_ = std::string("sending channel.close-ok: ") + amqp_error_string2(status);
    return;
  }
  OpenChannel();
}

void AmqpClient::RequireConnected() const {
  if (!lost_.empty()) throw std::runtime_error("AMQP connection unusable since: " + lost_);
}

void AmqpClient::Check(const amqp_rpc_reply_t& reply, std::string_view what) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return;
    case AMQP_RESPONSE_NONE: lost_ = "missing RPC reply"; break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: lost_ = amqp_error_string2(reply.library_error); break;
    case AMQP_RESPONSE_SERVER_EXCEPTION: {
      const std::string reason = DescribeServerClose(reply);
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        ReopenChannel();
      } else {
        amqp_connection_close_ok_t close_ok{};
        amqp_send_method(connection_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
        lost_ = reason;
      }
      throw std::runtime_error(std::string(what) + ": " + reason);
    }
  }
  throw std::runtime_error(std::string(what) + ": " + lost_);
}

void AmqpClient::DeclareQueue(const std::string& queue) {
  RequireConnected();
  amqp_queue_declare(connection_, kChannel, Bytes(queue), /*passive=*/0, /*durable=*/1,
                     /*exclusive=*/0, /*auto_delete=*/0, amqp_empty_table);
  Check(amqp_get_rpc_reply(connection_), "declare queue '" + queue + "'");
}

void AmqpClient::Publish(const std::string& queue, std::string_view body, const Headers& headers) {
  RequireConnected();
  std::vector<amqp_table_entry_t> entries;
  entries.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    amqp_table_entry_t entry{};
    entry.key = Bytes(name);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = Bytes(value);
    entries.push_back(entry);
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.content_type = Bytes("application/json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  if (!entries.empty()) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  }
  const int status = amqp_basic_publish(connection_, kChannel, amqp_empty_bytes, Bytes(queue),
                                        /*mandatory=*/1, /*immediate=*/0, &props, Bytes(body));
  if (status != AMQP_STATUS_OK) {
    lost_ = amqp_error_string2(status);
    throw std::runtime_error("publish to queue '" + queue + "': " + lost_);
  }
  WaitForConfirm(++published_, queue);
}

void AmqpClient::WaitForConfirm(std::uint64_t tag, const std::string& queue) {
  const std::string what = "publish to queue '" + queue + "'";
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::string returned;  // why the broker returned the message, if it did
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
        deadline - std::chrono::steady_clock::now());
    timeval timeout = ToTimeval(std::max(left, std::chrono::microseconds(0)));
    amqp_frame_t frame;
    const int status = amqp_simple_wait_frame_noblock(connection_, &frame, &timeout);
    if (status == AMQP_STATUS_TIMEOUT) {
      lost_ = "no publisher confirm within " + std::to_string(timeout_.count()) + " ms";
      throw std::runtime_error(what + ": " + lost_);
    }
    if (status != AMQP_STATUS_OK) {
      lost_ = amqp_error_string2(status);
      throw std::runtime_error(what + ": " + lost_);
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;

    const amqp_method_t& method = frame.payload.method;
    switch (method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(method.decoded);
        if (ack->delivery_tag == tag || (ack->multiple && ack->delivery_tag > tag)) {
          if (!returned.empty()) {
            throw std::runtime_error(what + ": the broker returned it: " + returned);
          }
          return;
        }
        break;
      }
      case AMQP_BASIC_NACK_METHOD:
        throw std::runtime_error(what + ": the broker refused it (basic.nack)");
      case AMQP_BASIC_RETURN_METHOD: {
        // A mandatory message nobody could route: the content follows, then the confirm.
        const auto* ret = static_cast<const amqp_basic_return_t*>(method.decoded);
        returned = ToString(ret->reply_text) + " (code " + std::to_string(ret->reply_code) + ")";
        amqp_message_t message;
        Check(amqp_read_message(connection_, frame.channel, &message, 0),
              what + ": reading the returned message");
        amqp_destroy_message(&message);
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t reply{};
        reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
        reply.reply = method;
        Check(reply, what);
        break;
      }
      default: break;
    }
    amqp_maybe_release_buffers(connection_);
  }
}

std::vector<Delivery> AmqpClient::Consume(const std::string& queue, std::size_t count,
                                          std::chrono::milliseconds timeout) {
  RequireConnected();
  const std::string what = "consume from queue '" + queue + "'";
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  std::vector<Delivery> deliveries;
  std::uint64_t last_tag = 0;
  // basic.get in a loop rather than a consumer: nothing is left in flight between calls.
  while (deliveries.size() < count) {
    const amqp_rpc_reply_t reply =
        amqp_basic_get(connection_, kChannel, Bytes(queue), /*no_ack=*/0);
    Check(reply, what);
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(std::clamp<std::chrono::steady_clock::duration>(
          (now - start) / 4, kMinGetPollInterval, kMaxGetPollInterval));
      continue;
    }
    const auto* get_ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
    last_tag = get_ok->delivery_tag;
    const bool redelivered = get_ok->redelivered != 0;
    amqp_message_t message;
    Check(amqp_read_message(connection_, kChannel, &message, 0), what + ": reading the message");
    deliveries.push_back(ToDelivery(message, redelivered));
    amqp_destroy_message(&message);
    amqp_maybe_release_buffers(connection_);
  }
  if (last_tag != 0) {
    const int status = amqp_basic_ack(connection_, kChannel, last_tag, /*multiple=*/1);
    if (status != AMQP_STATUS_OK) {
      lost_ = amqp_error_string2(status);
      throw std::runtime_error(what + ": ack: " + lost_);
    }
    // basic.ack has no reply. A passive declare after it is answered by the queue only once the
    // queue has processed the ack, so the messages are gone when we return.
    MessageCount(queue);
  }
  return deliveries;
}

std::size_t AmqpClient::MessageCount(const std::string& queue) {
  RequireConnected();
  const auto* ok =
      amqp_queue_declare(connection_, kChannel, Bytes(queue), /*passive=*/1,
                         /*durable=*/0, /*exclusive=*/0, /*auto_delete=*/0, amqp_empty_table);
  Check(amqp_get_rpc_reply(connection_), "count the messages of queue '" + queue + "'");
  return ok->message_count;
}

std::size_t AmqpClient::Purge(const std::string& queue) {
  RequireConnected();
  const auto* ok = amqp_queue_purge(connection_, kChannel, Bytes(queue));
  Check(amqp_get_rpc_reply(connection_), "purge queue '" + queue + "'");
  return ok->message_count;
}

}  // namespace workflowd::testing
