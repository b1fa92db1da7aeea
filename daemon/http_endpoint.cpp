#include "http_endpoint.hpp"

#include <optional>
#include <string_view>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace workflowd {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
// After a failed accept (out of descriptors, say), so that the loop does not spin on it.
constexpr std::chrono::milliseconds kAcceptRetry{100};

std::string HostPort(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

bool IsHttpError(const error_code& error) {
  static const error_code kHttp = http::make_error_code(http::error::bad_method);
  return error.category() == kHttp.category();
}

// What the connections share with the server. Both hold it, so that it outlives whichever
// goes last when the endpoint stops.
struct Shared {
  HttpRoutes routes;
  HttpEndpoint::Limits limits;
  std::size_t connections = 0;  // open connections; touched on the endpoint's thread only
};

// One client connection: reads a request, answers it, and reads the next while the client
// keeps the connection alive.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)),
        shared_(std::move(shared)),
        buffer_(2 * shared_->limits.max_header_bytes) {
    ++shared_->connections;
  }
  ~Connection() { --shared_->connections; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.max_header_bytes));
    stream_.expires_after(shared_->limits.timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code error, std::size_t) { self->OnRead(error); });
  }

 private:
  void OnRead(const error_code& error) {
    if (error == http::error::end_of_stream) return Close();
    if (error == http::error::header_limit || error == http::error::buffer_overflow) {
      return Reply(http::status::request_header_fields_too_large, false, kTextPlain,
                   "request header larger than " + std::to_string(shared_->limits.max_header_bytes) +
                       " bytes\n");
    }
    if (error == http::error::unexpected_body) {
      return Reply(http::status::bad_request, false, kTextPlain, "a request body is not accepted\n");
    }
    if (IsHttpError(error)) {
      return Reply(http::status::bad_request, false, kTextPlain, "not an HTTP request: " + error.message() + "\n");
    }
    // A timeout (the stream has closed the socket), a reset, ...: nobody to answer.
    if (error) return;

    const http::request<http::empty_body>& request = parser_->get();
    const bool keep_alive = request.keep_alive();
    if (request.method() != http::verb::get) {
      response_.set(http::field::allow, "GET");
      return Reply(http::status::method_not_allowed, keep_alive, kTextPlain, "only GET is served\n");
    }
    std::string_view path(request.target().data(), request.target().size());
    path = path.substr(0, path.find('?'));
    const auto route = shared_->routes.find(path);
    if (route == shared_->routes.end()) {
      std::string known;
      for (const auto& [name, serve] : shared_->routes) known += (known.empty() ? "" : ", ") + name;
      return Reply(http::status::not_found, keep_alive, kTextPlain, "not found; served: " + known + "\n");
    }
    HttpReply reply;
    try {
      reply = route->second();
    } catch (const std::exception& failure) {
      spdlog::error("metrics endpoint: GET {}: {}", path, failure.what());
      return Reply(http::status::internal_server_error, false, kTextPlain, std::string(failure.what()) + "\n");
    }
    Reply(static_cast<http::status>(reply.status), keep_alive, reply.content_type, std::move(reply.body));
  }

  void Reply(http::status status, bool keep_alive, std::string_view content_type, std::string body) {
    response_.version(11);
    response_.result(status);
    response_.set(http::field::server, "workflowd");
    response_.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    response_.keep_alive(keep_alive);
    response_.body() = std::move(body);
    response_.prepare_payload();
    stream_.expires_after(shared_->limits.timeout);
    http::async_write(stream_, response_, [self = shared_from_this()](error_code error, std::size_t) {
      if (error) return;
      const bool keep_alive = self->response_.keep_alive();
      self->response_ = {};
      keep_alive ? self->Read() : self->Close();
    });
  }

  void Close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

class HttpEndpoint::Server {
 public:
  Server(const std::string& address, std::uint16_t port, HttpRoutes routes, Limits limits)
      : shared_(std::make_shared<Shared>(Shared{std::move(routes), limits})) {
    error_code error;
    const net::ip::address ip = net::ip::make_address(address, error);
    if (error) throw HttpEndpointError("cannot listen on " + HostPort(address, port) + ": not an IP address");
    const tcp::endpoint endpoint(ip, port);
    auto check = [&] {
      if (error) throw HttpEndpointError("cannot listen on " + HostPort(address, port) + ": " + error.message());
    };
    acceptor_.open(endpoint.protocol(), error);
    check();
    acceptor_.set_option(net::socket_base::reuse_address(true), error);
    check();
    acceptor_.bind(endpoint, error);
    check();
    acceptor_.listen(net::socket_base::max_listen_connections, error);
    check();
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { Run(); });
  }

  ~Server() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept([this](error_code error, tcp::socket socket) {
      if (error == net::error::operation_aborted) return;
      if (error) {
        spdlog::warn("metrics endpoint: accepting a connection: {}", error.message());
        retry_.expires_after(kAcceptRetry);
        retry_.async_wait([this](error_code) { Accept(); });
        return;
      }
      if (shared_->connections >= shared_->limits.max_connections) {
        spdlog::debug("metrics endpoint: {} connections open, closing a new one", shared_->connections);
      } else {
        std::make_shared<Connection>(std::move(socket), shared_)->Read();
      }
      Accept();
    });
  }

  void Run() {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& failure) {
        spdlog::error("metrics endpoint: {}; serving on", failure.what());
      }
    }
  }

  net::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  net::steady_timer retry_{io_};
  std::shared_ptr<Shared> shared_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

HttpEndpoint::HttpEndpoint(const std::string& address, std::uint16_t port, HttpRoutes routes, Limits limits)
    : server_(std::make_unique<Server>(address, port, std::move(routes), limits)) {}

HttpEndpoint::~HttpEndpoint() = default;

std::uint16_t HttpEndpoint::port() const { return server_->port(); }

}  // namespace workflowd
