#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace workflowd {

// The listener could not be set up; what() names the address, the port and the reason.
class HttpEndpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HttpReply {
  unsigned status = 200;
  std::string content_type;
  std::string body;
};

// Path -> what a GET of it answers. Called on the endpoint's thread.
using HttpRoutes = std::map<std::string, std::function<HttpReply()>, std::less<>>;

// A small HTTP/1.1 server (Boost.Beast) on a thread of its own, for /metrics and /health: GET
// of a route answers with the route's reply, GET of another path 404, any other method 405.
// Clients are not trusted: a request's header is bounded, a client that sends nothing (or
// too slowly) is cut off at the read timeout, connections beyond the limit are closed at once,
// and a request that does not parse gets a 400 and a closed connection.
class HttpEndpoint {
 public:
  struct Limits {
    std::size_t max_connections = 16;
    std::size_t max_header_bytes = 8192;
    // For each request to arrive and each reply to be taken.
    std::chrono::milliseconds timeout{5000};
  };

  // Listens on address:port (port 0: one the kernel picks) before it returns, then serves.
  // Throws HttpEndpointError when it cannot listen (the port is taken, say).
  HttpEndpoint(const std::string& address, std::uint16_t port, HttpRoutes routes, Limits limits);
  HttpEndpoint(const std::string& address, std::uint16_t port, HttpRoutes routes)
      : HttpEndpoint(address, port, std::move(routes), Limits{}) {}
  // Stops serving, closes every connection and joins the thread: no route runs after it.
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // The port it listens on, also when the kernel picked it.
  std::uint16_t port() const;

 private:
  class Server;
  std::unique_ptr<Server> server_;
};

}  // namespace workflowd
