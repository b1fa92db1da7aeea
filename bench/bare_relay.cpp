// bare_relay: the baseline of the benchmark. A hand-written rabbitmq-c program with the shape and
// the guarantees of workflowd's two-stage pipeline, and nothing else: it consumes the input
// queue and republishes each body to the middle queue, consumes that and republishes to the
// output queue. Persistent, mandatory publishes with publisher confirms; a delivery is
// acknowledged only once its republish is confirmed.
//
// Like workflowd: one connection, one channel, both consumers on it with a per-consumer
// prefetch, confirms read by the one thread that owns the connection. Unlike workflowd: no JSON,
// no state store, no worker threads. It batches as a competent hand-written relay would: the
// broker confirms with `multiple`, and the relay acknowledges with one `multiple` ack per batch
// of input it read, covering every delivery whose republish is confirmed.
//
//   bare_relay --port P [--vhost V] [--prefetch 1000] [--in Q --mid Q --out Q] [--fan-out K]
//              [--ack-mode multiple|single] [--properties plain|workflowd] [--pad BYTES]
//
// --fan-out K is the fan-out/fan-in shape of bench/plugins/fan.cpp: the first stage publishes K
// copies of each body to the middle queue; the second counts the copies of each body in memory
// and publishes it to the output queue once all K arrived (a delivery that publishes nothing is
// settled as soon as those before it are).
//
// The last three make the relay behave like workflowd on the wire, one difference at a time, to
// find what costs the broker: one basic.ack per delivery; a message_id property and src_tag and
// dest_tag headers on each publish; a body longer by BYTES (workflowd adds MessageID, originator).
//
// Bodies with the hop fields of bench/hop_stamp.hpp get the same stamps as in workflowd's
// benchmark plugins: hop_sent just before the first stage's publish, hop_received when the
// second stage has read the delivery (for --fan-out, the last copy).
//
// Prints "bare_relay: consuming" once both consumers are attached; runs until SIGTERM or SIGINT.
// Exits 1 on any broker error, a nack or a returned message: a baseline that loses messages
// would be no baseline.

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "hop_stamp.hpp"

namespace {

volatile std::sig_atomic_t stop_requested = 0;

void OnSignal(int) { stop_requested = 1; }

constexpr amqp_channel_t kChannel = 1;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "bare_relay: %s\n", what.c_str());
  std::exit(1);
}

void CheckRpc(amqp_connection_state_t connection, const char* what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    Fail(std::string(what) + ": " + amqp_error_string2(reply.library_error));
  }
  Fail(std::string(what) + ": the broker refused it (method " + std::to_string(reply.reply.id) + ")");
}

void CheckStatus(int status, const char* what) {
  if (status != AMQP_STATUS_OK) Fail(std::string(what) + ": " + amqp_error_string2(status));
}

amqp_bytes_t Bytes(std::string_view text) { return {text.size(), const_cast<char*>(text.data())}; }

struct Options {
  int port = 5672;
  std::string vhost = "/";
  int prefetch = 1000;
  int heartbeat = 30;
  std::string in = "pipeline_in";
  std::string mid = "pipeline_mid";
  std::string out = "pipeline_out";
  bool single_acks = false;
  bool workflowd_properties = false;
  std::size_t pad = 0;
  unsigned fan_out = 0;  // 0: the two-stage pipeline
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view name = argv[i];
    if (i + 1 >= argc) Fail("option " + std::string(name) + " needs a value");
    const char* value = argv[++i];
    if (name == "--port") {
      options.port = std::atoi(value);
    } else if (name == "--vhost") {
      options.vhost = value;
    } else if (name == "--prefetch") {
      options.prefetch = std::atoi(value);
    } else if (name == "--heartbeat") {
      options.heartbeat = std::atoi(value);
    } else if (name == "--in") {
      options.in = value;
    } else if (name == "--mid") {
      options.mid = value;
    } else if (name == "--out") {
      options.out = value;
    } else if (name == "--ack-mode") {
      if (std::string_view(value) != "multiple" && std::string_view(value) != "single") {
        Fail("--ack-mode is multiple or single");
      }
      options.single_acks = std::string_view(value) == "single";
    } else if (name == "--properties") {
      if (std::string_view(value) != "plain" && std::string_view(value) != "workflowd") {
        Fail("--properties is plain or workflowd");
      }
      options.workflowd_properties = std::string_view(value) == "workflowd";
    } else if (name == "--fan-out") {
      options.fan_out = static_cast<unsigned>(std::atoi(value));
      if (options.fan_out < 1 || options.fan_out > 64) Fail("--fan-out must be 1..64");
    } else if (name == "--pad") {
      options.pad = static_cast<std::size_t>(std::atoll(value));
    } else {
      Fail("unknown option " + std::string(name));
    }
  }
  if (options.prefetch < 1 || options.prefetch > 65535) Fail("--prefetch must be 1..65535");
  return options;
}

// A republish waiting for its confirm, in the order of the deliveries: the last of a delivery's
// republishes settles it. A delivery that republishes nothing has one, confirmed from the start.
struct Pending {
  std::uint64_t delivery_tag;
  std::uint64_t publish_tag;  // 0: nothing was published
  bool confirmed;
  bool settles;
};

class Relay {
 public:
  explicit Relay(const Options& options) : options_(options), connection_(amqp_new_connection()) {
    amqp_socket_t* socket = amqp_tcp_socket_new(connection_);
    if (socket == nullptr) Fail("cannot create a socket");
    CheckStatus(amqp_socket_open(socket, "127.0.0.1", options.port), "connecting");
    amqp_rpc_reply_t login = amqp_login(connection_, options.vhost.c_str(), 0, 131072, options.heartbeat,
                                        AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (login.reply_type != AMQP_RESPONSE_NORMAL) Fail("cannot log in to vhost " + options.vhost);
    amqp_channel_open(connection_, kChannel);
    CheckRpc(connection_, "opening the channel");
    amqp_confirm_select(connection_, kChannel);
    CheckRpc(connection_, "turning on publisher confirms");
    // Before consuming, per consumer, as workflowd does.
    amqp_basic_qos(connection_, kChannel, 0, static_cast<std::uint16_t>(options.prefetch), /*global=*/0);
    CheckRpc(connection_, "setting the prefetch");
    amqp_basic_consume(connection_, kChannel, Bytes(options.in), amqp_cstring_bytes("stage1"), 0, 0, 0,
                       amqp_empty_table);
    CheckRpc(connection_, "consuming the input queue");
    amqp_basic_consume(connection_, kChannel, Bytes(options.mid), amqp_cstring_bytes("stage2"), 0, 0, 0,
                       amqp_empty_table);
    CheckRpc(connection_, "consuming the middle queue");
    std::printf("bare_relay: consuming %s and %s on %s, prefetch %d\n", options.in.c_str(),
                options.mid.c_str(), options.vhost.c_str(), options.prefetch);
    std::fflush(stdout);
  }

  ~Relay() {
    amqp_channel_close(connection_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(connection_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(connection_);
  }

  void Run() {
    while (stop_requested == 0) {
      const bool buffered = amqp_frames_enqueued(connection_) != 0 || amqp_data_in_buffer(connection_) != 0;
      // Everything read so far is handled: one ack covers what is confirmed.
      if (!buffered) FlushAck();
      amqp_maybe_release_buffers(connection_);
      amqp_frame_t frame;
      timeval wait{0, buffered ? 0 : 200 * 1000};
      int status = amqp_simple_wait_frame_noblock(connection_, &frame, &wait);
      if (status == AMQP_STATUS_TIMEOUT) continue;
      CheckStatus(status, "reading from the broker");
      if (frame.frame_type != AMQP_FRAME_METHOD) Fail("content frame outside a message");
      switch (frame.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
          OnDeliver(*static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded));
          break;
        case AMQP_BASIC_ACK_METHOD: {
          auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          OnConfirm(ack->delivery_tag, ack->multiple != 0);
          break;
        }
        case AMQP_BASIC_NACK_METHOD:
          Fail("the broker refused a republish (basic.nack)");
        case AMQP_BASIC_RETURN_METHOD:
          Fail("a republish was returned: no such queue");
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
          Fail("the broker closed the channel or connection");
        default:
          break;
      }
    }
    FlushAck();
    std::printf("bare_relay: relayed %llu messages\n", static_cast<unsigned long long>(relayed_));
  }

 private:
  amqp_frame_t WaitContentFrame() {
    amqp_frame_t frame;
    timeval wait{30, 0};
    CheckStatus(amqp_simple_wait_frame_noblock(connection_, &frame, &wait), "reading a message");
    return frame;
  }

  void OnDeliver(const amqp_basic_deliver_t& deliver) {
    const std::uint64_t delivery_tag = deliver.delivery_tag;
    const bool first_stage = std::string_view(static_cast<const char*>(deliver.consumer_tag.bytes),
                                              deliver.consumer_tag.len) == "stage1";
    amqp_frame_t header = WaitContentFrame();
    if (header.frame_type != AMQP_FRAME_HEADER) Fail("expected a content header");
    const std::uint64_t size = header.payload.properties.body_size;
    // A body in one frame is republished from the frame itself; a longer one is put together.
    amqp_bytes_t body = amqp_empty_bytes;
    body_.clear();
    std::uint64_t received = 0;
    while (received < size) {
      amqp_frame_t frame = WaitContentFrame();
      if (frame.frame_type != AMQP_FRAME_BODY) Fail("expected a body frame");
      const amqp_bytes_t& fragment = frame.payload.body_fragment;
      received += fragment.len;
      if (received == fragment.len && received == size && options_.pad == 0) {
        body = fragment;
      } else {
        body_.append(static_cast<const char*>(fragment.bytes), fragment.len);
        body = Bytes(body_);
      }
    }

    if (options_.pad > 0) {
      body_.append(options_.pad, ' ');
      body = Bytes(body_);
    }

    if (first_stage) {
      Stamp(body, workflowd::bench::kHopSentPrefix, workflowd::bench::NowNs());
      const unsigned copies = options_.fan_out == 0 ? 1 : options_.fan_out;
      for (unsigned copy = 1; copy <= copies; ++copy) Publish(options_.mid, body, delivery_tag, copy == copies);
      return;
    }
    const std::int64_t received_ns = workflowd::bench::NowNs();
    if (options_.fan_out == 0) {
      Stamp(body, workflowd::bench::kHopReceivedPrefix, received_ns);
      Publish(options_.out, body, delivery_tag, true);
    } else {
      const std::string key(static_cast<const char*>(body.bytes), body.len);
      auto count = copies_seen_.try_emplace(key, 0).first;
      if (++count->second < options_.fan_out) {
        window_.push_back(Pending{delivery_tag, 0, true, true});
        PopSettled();
        return;
      }
      copies_seen_.erase(count);
      Stamp(body, workflowd::bench::kHopReceivedPrefix, received_ns);
      Publish(options_.out, body, delivery_tag, true);
    }
  }

  // Writes ns into the digits after `prefix` (hop_stamp.hpp), where the body has them, on the
  // relay's own copy of the body.
  void Stamp(amqp_bytes_t& body, std::string_view prefix, std::int64_t ns) {
    const std::string_view text(static_cast<const char*>(body.bytes), body.len);
    const std::size_t at = text.find(prefix);
    if (at == std::string_view::npos || text.size() - at - prefix.size() < workflowd::bench::kStampDigits) return;
    if (body.bytes != body_.data()) {
      body_.assign(text);
      body = Bytes(body_);
    }
    const auto digits = workflowd::bench::StampDigits(ns);
    std::copy(digits.begin(), digits.end(), body_.begin() + static_cast<std::ptrdiff_t>(at + prefix.size()));
  }

  void Publish(const std::string& queue, amqp_bytes_t body, std::uint64_t delivery_tag, bool settles) {
    amqp_basic_properties_t properties{};
    properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.content_type = amqp_cstring_bytes("application/json");
    properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    std::array<amqp_table_entry_t, 2> headers{};
    char message_id[40];
    if (options_.workflowd_properties) {
      // As workflowd: a UUID-sized message_id, and src_tag/dest_tag headers.
      std::snprintf(message_id, sizeof message_id, "00000000-0000-4000-8000-%012llu",
                    static_cast<unsigned long long>(next_publish_tag_));
      properties._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
      properties.message_id = amqp_cstring_bytes(message_id);
      headers[0].key = amqp_cstring_bytes("src_tag");
      headers[0].value.kind = AMQP_FIELD_KIND_UTF8;
      headers[0].value.value.bytes = amqp_cstring_bytes("mid");
      headers[1].key = amqp_cstring_bytes("dest_tag");
      headers[1].value.kind = AMQP_FIELD_KIND_UTF8;
      headers[1].value.value.bytes = amqp_cstring_bytes("out");
      properties.headers = {static_cast<int>(headers.size()), headers.data()};
    }
    CheckStatus(amqp_basic_publish(connection_, kChannel, amqp_empty_bytes, Bytes(queue), /*mandatory=*/1,
                                   /*immediate=*/0, &properties, body),
                "publishing");
    window_.push_back(Pending{delivery_tag, next_publish_tag_++, false, settles});
  }

  void AckOne(std::uint64_t delivery_tag) {
    CheckStatus(amqp_basic_ack(connection_, kChannel, delivery_tag, /*multiple=*/0), "acknowledging");
  }

  void OnConfirm(std::uint64_t tag, bool multiple) {
    for (Pending& pending : window_) {
      if (pending.publish_tag > tag) break;
      if (pending.publish_tag != 0 && (multiple || pending.publish_tag == tag)) pending.confirmed = true;
    }
    PopSettled();
  }

  // Deliveries were handled in the order they came, so the confirmed prefix of the window is a
  // prefix of the delivery tags too: one multiple ack settles all of it.
  void PopSettled() {
    while (!window_.empty() && window_.front().confirmed) {
      const Pending& front = window_.front();
      if (front.settles) {
        if (options_.single_acks) AckOne(front.delivery_tag);
        ack_upto_ = front.delivery_tag;
        ++relayed_;
      }
      window_.pop_front();
    }
  }

  void FlushAck() {
    if (options_.single_acks) acked_ = ack_upto_;
    if (ack_upto_ <= acked_) return;
    CheckStatus(amqp_basic_ack(connection_, kChannel, ack_upto_, /*multiple=*/1), "acknowledging");
    acked_ = ack_upto_;
  }

  const Options& options_;
  amqp_connection_state_t connection_;
  std::string body_;
  std::deque<Pending> window_;
  std::unordered_map<std::string, unsigned> copies_seen_;  // --fan-out: body -> copies arrived
  std::uint64_t next_publish_tag_ = 1;
  std::uint64_t ack_upto_ = 0;
  std::uint64_t acked_ = 0;
  std::uint64_t relayed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  Relay relay(options);
  relay.Run();
  return 0;
}
