#include "amqp_connection.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <type_traits>

#include <amqp_tcp_socket.h>

namespace workflowd {
namespace {

amqp_bytes_t Bytes(std::string_view text) {
  return {text.size(), const_cast<char*>(text.data())};
}

std::string_view View(amqp_bytes_t bytes) {
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

timeval ToTimeval(std::chrono::milliseconds duration) {
  return {static_cast<time_t>(duration.count() / 1000),
          static_cast<suseconds_t>(duration.count() % 1000 * 1000)};
}

std::string DescribeClose(const amqp_method_t& method) {
  if (method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_connection_close_t*>(method.decoded);
    return "the broker closed the connection: " + std::to_string(close->reply_code) + " " +
           std::string(View(close->reply_text));
  }
  if (method.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_channel_close_t*>(method.decoded);
    return "the broker closed the channel: " + std::to_string(close->reply_code) + " " +
           std::string(View(close->reply_text));
  }
  return "unexpected reply " + std::string(amqp_method_name(method.id));
}

std::string DescribeReply(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply from the broker";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION: return DescribeClose(reply.reply);
  }
  return "unknown reply type";
}

std::string DescribeArgument(const QueueArgument& value) {
  if (const auto* number = std::get_if<std::int64_t>(&value)) return std::to_string(*number);
  if (const auto* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
  return std::get<std::string>(value);
}

template <class What>
std::string Text(const What& what) {
  if constexpr (std::is_invocable_v<What>) {
    return what();
  } else {
    return std::string(what);
  }
}

std::string DescribeQueue(const QueueSettings& settings) {
  std::string text = settings.type == QueueType::kQuorum ? "durable quorum" : "durable classic";
  for (const auto& [name, value] : settings.arguments) {
    text += ", " + name + "=" + DescribeArgument(value);
  }
  return text;
}

}  // namespace

AmqpConnection::AmqpConnection(const BrokerSettings& settings)
    : state_(amqp_new_connection()),
      peer_(settings.host + ":" + std::to_string(settings.port) + settings.vhost),
      rpc_timeout_(settings.connect_timeout) {
  if (state_ == nullptr) throw BrokerError("cannot allocate an AMQP connection");
  amqp_socket_t* socket = amqp_tcp_socket_new(state_);
  if (socket == nullptr) {
    amqp_destroy_connection(state_);
    throw BrokerError("cannot create a TCP socket for the broker");
  }
  timeval timeout = ToTimeval(settings.connect_timeout);
  int status = amqp_socket_open_noblock(socket, settings.host.c_str(), settings.port, &timeout);
  if (status != AMQP_STATUS_OK) {
    amqp_destroy_connection(state_);
    throw BrokerError("cannot connect to the broker at " + settings.host + ":" +
                      std::to_string(settings.port) + ": " + amqp_error_string2(status));
  }
  // A silent peer must not hang the owner: bound the handshake and every RPC.
  amqp_set_handshake_timeout(state_, &timeout);
  amqp_set_rpc_timeout(state_, &timeout);
  // A peer that stops reading (a half-open socket) must not block a send forever: the kernel
  // gives up on unacknowledged data after this long, and the send fails.
  unsigned user_timeout_ms = static_cast<unsigned>(
      std::max<std::chrono::milliseconds>(settings.heartbeat * 2, std::chrono::seconds(10)).count());
  setsockopt(amqp_get_sockfd(state_), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
             sizeof user_timeout_ms);
  open_ = true;
  amqp_rpc_reply_t login = amqp_login(
      state_, settings.vhost.c_str(), 0, 131072, static_cast<int>(settings.heartbeat.count()),
      AMQP_SASL_METHOD_PLAIN, settings.user.c_str(), settings.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string reason = DescribeReply(login);
    amqp_destroy_connection(state_);
    throw BrokerError("cannot log in to the broker at " + peer_ + " as '" + settings.user +
                      "': " + reason);
  }
  try {
    amqp_channel_open(state_, kChannel);
    CheckRpc("opening a channel");
    amqp_confirm_select(state_, kChannel);
    CheckRpc("turning on publisher confirms");
  } catch (...) {
    amqp_destroy_connection(state_);  // the destructor does not run for a throwing constructor
    throw;
  }
}

AmqpConnection::~AmqpConnection() { amqp_destroy_connection(state_); }

template <class What>
void AmqpConnection::CheckRpc(const What& what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  open_ = false;
  throw BrokerError(Text(what) + " on " + peer_ + " failed: " + DescribeReply(reply));
}

template <class What>
void AmqpConnection::Check(int status, const What& what) {
  if (status == AMQP_STATUS_OK) return;
  open_ = false;
  throw BrokerError(Text(what) + " on " + peer_ + " failed: " + amqp_error_string2(status));
}

void AmqpConnection::DeclareQueue(std::string_view queue, const QueueSettings& settings,
                                  std::string_view dead_letter_queue) {
  std::vector<amqp_table_entry_t> entries;
  auto add_text = [&](std::string_view key, std::string_view value) {
    amqp_table_entry_t entry{};
    entry.key = Bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = Bytes(value);
    entries.push_back(entry);
  };
  if (settings.type == QueueType::kQuorum) add_text("x-queue-type", "quorum");
  bool names_dead_letter_target = settings.arguments.contains("x-dead-letter-exchange") ||
                                  settings.arguments.contains("x-dead-letter-routing-key");
  if (!dead_letter_queue.empty() && !names_dead_letter_target) {
    add_text("x-dead-letter-exchange", "");
    add_text("x-dead-letter-routing-key", dead_letter_queue);
  }
  for (const auto& [name, value] : settings.arguments) {
    amqp_table_entry_t entry{};
    entry.key = Bytes(name);
    if (const auto* number = std::get_if<std::int64_t>(&value)) {
      entry.value.kind = AMQP_FIELD_KIND_I64;
      entry.value.value.i64 = *number;
    } else if (const auto* flag = std::get_if<bool>(&value)) {
      entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
      entry.value.value.boolean = *flag;
    } else {
      entry.value.kind = AMQP_FIELD_KIND_UTF8;
      entry.value.value.bytes = Bytes(std::get<std::string>(value));
    }
    entries.push_back(entry);
  }
  amqp_table_t arguments{static_cast<int>(entries.size()), entries.data()};
  amqp_queue_declare(state_, kChannel, Bytes(queue), /*passive=*/0, /*durable=*/1,
                     /*exclusive=*/0, /*auto_delete=*/0, arguments);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  open_ = false;
  std::string text = "declaring queue '" + std::string(queue) + "' as " + DescribeQueue(settings) +
                     " on " + peer_ + " failed: " + DescribeReply(reply);
  if (text.find("PRECONDITION_FAILED") != std::string::npos) {
    text += "; the queue exists with other arguments: match them in the config's queues "
            "section, or delete the queue";
  }
  throw BrokerError(text);
}

void AmqpConnection::DeclareDelay(std::string_view name, std::chrono::milliseconds ttl) {
  auto what = [&] { return "declaring the delay queue '" + std::string(name) + "'"; };
  amqp_exchange_declare(state_, kChannel, Bytes(name), amqp_cstring_bytes("fanout"), /*passive=*/0,
                        /*durable=*/1, /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
  CheckRpc(what);
  std::array<amqp_table_entry_t, 2> entries{};
  entries[0].key = amqp_cstring_bytes("x-message-ttl");
  entries[0].value.kind = AMQP_FIELD_KIND_I64;
  entries[0].value.value.i64 = ttl.count();
  // No routing key of its own: the message keeps the one it was published with, its queue.
  entries[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
  entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
  entries[1].value.value.bytes = amqp_empty_bytes;
  amqp_queue_declare(state_, kChannel, Bytes(name), /*passive=*/0, /*durable=*/1, /*exclusive=*/0,
                     /*auto_delete=*/0, amqp_table_t{static_cast<int>(entries.size()), entries.data()});
  CheckRpc(what);
  amqp_queue_bind(state_, kChannel, Bytes(name), Bytes(name), amqp_empty_bytes, amqp_empty_table);
  CheckRpc(what);
}

void AmqpConnection::SetPrefetch(std::uint16_t count) {
  amqp_basic_qos(state_, kChannel, 0, count, /*global=*/0);
  CheckRpc("setting the prefetch count");
}

void AmqpConnection::Consume(std::string_view queue, std::string_view consumer_tag) {
  amqp_basic_consume(state_, kChannel, Bytes(queue), Bytes(consumer_tag), /*no_local=*/0,
                     /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
  CheckRpc([&] { return "consuming from queue '" + std::string(queue) + "'"; });
}

void AmqpConnection::CancelConsumer(std::string_view consumer_tag) {
  amqp_basic_cancel(state_, kChannel, Bytes(consumer_tag));
  CheckRpc([&] { return "cancelling consumer '" + std::string(consumer_tag) + "'"; });
}

std::uint64_t AmqpConnection::Publish(std::string_view queue, std::string_view body,
                                      const PublishOptions& options) {
  if (options.headers.size() > kMaxPublishHeaders) {
    throw std::logic_error("publishing with " + std::to_string(options.headers.size()) + " headers; at most " +
                           std::to_string(kMaxPublishHeaders) + " fit");
  }
  std::array<amqp_table_entry_t, kMaxPublishHeaders + 1> header_entries{};
  int header_count = 0;
  for (const auto& [name, value] : options.headers) {
    if (value.empty()) continue;
    amqp_table_entry_t& entry = header_entries[header_count++];
    entry.key = Bytes(name);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = Bytes(value);
  }
  if (options.attempt > 0) {
    amqp_table_entry_t& entry = header_entries[header_count++];
    entry.key = Bytes(kAttemptHeader);
    entry.value.kind = AMQP_FIELD_KIND_I64;
    entry.value.value.i64 = options.attempt;
  }
  amqp_basic_properties_t properties{};
  properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  properties.content_type = amqp_cstring_bytes("application/json");
  properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  if (!options.message_id.empty()) {
    properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    properties.message_id = Bytes(options.message_id);
  }
  if (header_count > 0) {
    properties._flags |= AMQP_BASIC_HEADERS_FLAG;
    properties.headers = {header_count, header_entries.data()};
  }
  if (options.timestamp > 0) {
    properties._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    properties.timestamp = static_cast<std::uint64_t>(options.timestamp);
  }
  int status = amqp_basic_publish(state_, kChannel, Bytes(options.exchange), Bytes(queue),
                                  /*mandatory=*/1, /*immediate=*/0, &properties, Bytes(body));
  Check(status, [&] { return "publishing to queue '" + std::string(queue) + "'"; });
  return next_publish_tag_++;
}

void AmqpConnection::Ack(std::uint64_t delivery_tag, bool multiple) {
  Check(amqp_basic_ack(state_, kChannel, delivery_tag, multiple ? 1 : 0), "acknowledging a delivery");
}

void AmqpConnection::Cork(bool corked) {
  const int value = corked ? 1 : 0;
  // A failure only costs the batching; the next send reports a dead socket.
  setsockopt(amqp_get_sockfd(state_), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

void AmqpConnection::Requeue(std::uint64_t delivery_tag) {
  Check(amqp_basic_nack(state_, kChannel, delivery_tag, /*multiple=*/0, /*requeue=*/1),
        "putting a delivery back");
}

void AmqpConnection::Reject(std::uint64_t delivery_tag) {
  Check(amqp_basic_reject(state_, kChannel, delivery_tag, /*requeue=*/0), "rejecting a delivery");
}

bool AmqpConnection::HasBufferedInput() const {
  return amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_);
}

int AmqpConnection::fd() const { return amqp_get_sockfd(state_); }

std::optional<BrokerEvent> AmqpConnection::NextEvent(std::chrono::milliseconds timeout) {
  // Everything read before was copied out: recycle the frame memory.
  amqp_maybe_release_buffers(state_);
  amqp_frame_t frame;
  timeval wait = ToTimeval(timeout);
  int status = amqp_simple_wait_frame_noblock(state_, &frame, &wait);
  if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
  Check(status, "reading from the broker");
  if (frame.frame_type != AMQP_FRAME_METHOD) {
    open_ = false;
    throw BrokerError("protocol error from " + peer_ + ": content frame outside a message");
  }
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_DELIVER_METHOD:
      return ReadDelivery(*static_cast<const amqp_basic_deliver_t*>(method.decoded));
    case AMQP_BASIC_ACK_METHOD: {
      const auto* ack = static_cast<const amqp_basic_ack_t*>(method.decoded);
      return PublishConfirm{ack->delivery_tag, ack->multiple != 0, true};
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* nack = static_cast<const amqp_basic_nack_t*>(method.decoded);
      return PublishConfirm{nack->delivery_tag, nack->multiple != 0, false};
    }
    case AMQP_BASIC_RETURN_METHOD:
      return ReadReturn(*static_cast<const amqp_basic_return_t*>(method.decoded));
    case AMQP_BASIC_CANCEL_METHOD: {
      const auto* cancel = static_cast<const amqp_basic_cancel_t*>(method.decoded);
      open_ = false;
      throw BrokerError("the broker cancelled consumer '" +
                        std::string(View(cancel->consumer_tag)) + "' on " + peer_ +
                        " (was its queue deleted?)");
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
      FailClosed(frame);
    default:
      return std::nullopt;
  }
}

void AmqpConnection::FailClosed(const amqp_frame_t& frame) {
  std::string reason = DescribeClose(frame.payload.method);
  // Answer the close so the broker logs a clean shutdown; the connection is dead either way.
  if (frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t close_ok{};
    amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
  } else {
    amqp_channel_close_ok_t close_ok{};
    amqp_send_method(state_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
  }
  open_ = false;
  throw BrokerError(reason + " (" + peer_ + ")");
}

amqp_frame_t AmqpConnection::WaitContentFrame() {
  amqp_frame_t frame;
  timeval wait = ToTimeval(rpc_timeout_);
  int status = amqp_simple_wait_frame_noblock(state_, &frame, &wait);
  Check(status, "reading a message body");
  return frame;
}

amqp_frame_t AmqpConnection::WaitContentHeader() {
  amqp_frame_t frame = WaitContentFrame();
  if (frame.frame_type != AMQP_FRAME_HEADER) {
    open_ = false;
    throw BrokerError("protocol error from " + peer_ + ": expected a content header");
  }
  return frame;
}

void AmqpConnection::ReadBody(std::uint64_t size, std::uint64_t keep, std::string& body) {
  body.reserve(keep);
  std::uint64_t received = 0;
  while (received < size) {
    amqp_frame_t frame = WaitContentFrame();
    if (frame.frame_type != AMQP_FRAME_BODY) {
      open_ = false;
      throw BrokerError("protocol error from " + peer_ + ": expected a body frame");
    }
    const std::string_view fragment = View(frame.payload.body_fragment);
    if (received < keep) body.append(fragment.substr(0, keep - received));
    received += fragment.size();
    // A large body would otherwise pile up in the channel's frame pool until the next event.
    amqp_maybe_release_buffers_on_channel(state_, kChannel);
  }
}

AmqpConnection::Content AmqpConnection::ReadContent(std::uint64_t body_limit) {
  Content content;
  amqp_frame_t frame = WaitContentHeader();
  content.body_size = frame.payload.properties.body_size;
  const auto* properties =
      static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
  if ((properties->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
    content.message_id = View(properties->message_id);
  }
  if ((properties->_flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    for (int i = 0; i < properties->headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = properties->headers.entries[i];
      std::string_view key = View(entry.key);
      if (key == kAttemptHeader) {
        if (entry.value.kind == AMQP_FIELD_KIND_I64) content.attempt = entry.value.value.i64;
        if (entry.value.kind == AMQP_FIELD_KIND_I32) content.attempt = entry.value.value.i32;
        continue;
      }
      if (entry.value.kind != AMQP_FIELD_KIND_UTF8 && entry.value.kind != AMQP_FIELD_KIND_BYTES) continue;
      if (key == "src_tag") content.src_tag = View(entry.value.value.bytes);
      if (key == "dest_tag") content.dest_tag = View(entry.value.value.bytes);
    }
  }
  content.oversized = content.body_size > body_limit;
  ReadBody(content.body_size, content.oversized ? 0 : content.body_size, content.body);
  return content;
}

std::optional<FetchedMessage> AmqpConnection::Get(std::string_view queue, std::uint64_t body_limit) {
  amqp_maybe_release_buffers(state_);
  const amqp_rpc_reply_t reply = amqp_basic_get(state_, kChannel, Bytes(queue), /*no_ack=*/0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    open_ = false;
    throw BrokerError("reading queue '" + std::string(queue) + "' on " + peer_ + " failed: " + DescribeReply(reply));
  }
  if (reply.reply.id != AMQP_BASIC_GET_OK_METHOD) return std::nullopt;  // basic.get-empty
  FetchedMessage message;
  message.tag = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded)->delivery_tag;
  const amqp_frame_t header = WaitContentHeader();
  message.body_size = header.payload.properties.body_size;
  // The properties live in frame memory that reading the body releases: copy them out first.
  const auto& properties = *static_cast<const amqp_basic_properties_t*>(header.payload.properties.decoded);
  if ((properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) message.message_id = View(properties.message_id);
  if ((properties._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) {
    message.timestamp = static_cast<std::int64_t>(properties.timestamp);
  }
  const auto is_text = [](const amqp_field_value_t& value) {
    return value.kind == AMQP_FIELD_KIND_UTF8 || value.kind == AMQP_FIELD_KIND_BYTES;
  };
  if ((properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    for (int i = 0; i < properties.headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = properties.headers.entries[i];
      if (is_text(entry.value)) {
        message.text_headers.emplace(View(entry.key), View(entry.value.value.bytes));
      } else if (View(entry.key) == "x-death" && entry.value.kind == AMQP_FIELD_KIND_ARRAY &&
                 entry.value.value.array.num_entries > 0 &&
                 entry.value.value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE) {
        // The broker puts the latest dead-lettering first.
        const amqp_table_t& death = entry.value.value.array.entries[0].value.table;
        for (int j = 0; j < death.num_entries; ++j) {
          const amqp_table_entry_t& field = death.entries[j];
          if (is_text(field.value)) {
            message.text_headers.emplace("x-death." + std::string(View(field.key)), View(field.value.value.bytes));
          } else if (View(field.key) == "time" && field.value.kind == AMQP_FIELD_KIND_TIMESTAMP) {
            message.death_time = static_cast<std::int64_t>(field.value.value.u64);
          }
        }
      }
    }
  }
  ReadBody(message.body_size, std::min(message.body_size, body_limit), message.body);
  return message;
}

InboundDelivery AmqpConnection::ReadDelivery(const amqp_basic_deliver_t& deliver) {
  InboundDelivery delivery;
  delivery.tag = deliver.delivery_tag;
  delivery.consumer_tag = View(deliver.consumer_tag);
  delivery.redelivered = deliver.redelivered != 0;
  Content content = ReadContent(body_limit_);
  delivery.body = std::move(content.body);
  delivery.body_size = content.body_size;
  delivery.oversized = content.oversized;
  delivery.src_tag = std::move(content.src_tag);
  delivery.dest_tag = std::move(content.dest_tag);
  delivery.message_id = std::move(content.message_id);
  delivery.attempt = content.attempt;
  return delivery;
}

ReturnedMessage AmqpConnection::ReadReturn(const amqp_basic_return_t& returned) {
  ReturnedMessage message;
  message.routing_key = View(returned.routing_key);
  message.reply_text = View(returned.reply_text);
  // Only the message id matters for a returned message; its body is read and dropped.
  message.message_id = ReadContent(0).message_id;
  return message;
}

void AmqpConnection::Close() {
  if (!open_) return;
  open_ = false;
  amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
}

}  // namespace workflowd
