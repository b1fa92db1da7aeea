#include "http_endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using Catch::Contains;
using Catch::StartsWith;
using workflowd::HttpEndpoint;
using workflowd::HttpEndpointError;
using workflowd::HttpReply;
using workflowd::HttpRoutes;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void Fail(const char* call) { throw std::runtime_error(std::string(call) + ": " + std::strerror(errno)); }

// A TCP client of the endpoint on 127.0.0.1, speaking raw bytes so that it can also misbehave.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Fail("socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) Fail("connect");
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      // MSG_NOSIGNAL: a server that has closed must fail the test, not kill it.
      const ssize_t sent = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0) Fail("send");
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
  }

  // Everything until the server closes; throws if it has not closed within timeout.
  std::string ReadUntilClosed(std::chrono::milliseconds timeout = 5s) {
    std::string all;
    const auto deadline = Clock::now() + timeout;
    while (Read(all, deadline)) {
    }
    return all;
  }

  // One response whose length its Content-Length gives (the server keeps the connection).
  std::string ReadResponse(std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end = std::string::npos;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Read(pending_, deadline)) throw std::runtime_error("closed before a response header: " + pending_);
    }
    const std::string header = pending_.substr(0, end + 4);
    const std::size_t at = header.find("Content-Length: ");
    REQUIRE(at != std::string::npos);
    const std::size_t length = std::stoul(header.substr(at + 16));
    while (pending_.size() < end + 4 + length) {
      if (!Read(pending_, deadline)) throw std::runtime_error("closed within a response body: " + pending_);
    }
    std::string response = pending_.substr(0, end + 4 + length);
    pending_.erase(0, response.size());
    return response;
  }

 private:
  // Appends what arrives; false at the end of the stream.
  bool Read(std::string& into, Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd ready{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&ready, 1, static_cast<int>(left.count())) != 1) {
      throw std::runtime_error("the server neither answered nor closed in time; so far: " + into);
    }
    char buffer[16384];
    const ssize_t size = recv(fd_, buffer, sizeof buffer, 0);
    if (size < 0 && errno == ECONNRESET) return false;
    if (size < 0) Fail("recv");
    into.append(buffer, static_cast<std::size_t>(size));
    return size > 0;
  }

  int fd_ = -1;
  std::string pending_;  // read past the last response
};

HttpRoutes Routes() {
  HttpRoutes routes;
  routes["/metrics"] = [] { return HttpReply{200, "text/plain; version=0.0.4", "up 1\n"}; };
  routes["/health"] = [] { return HttpReply{503, "application/json", "{\"status\":\"unavailable\"}\n"}; };
  routes["/broken"] = []() -> HttpReply { throw std::runtime_error("the route failed"); };
  return routes;
}

std::string Body(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

}  // namespace

TEST_CASE("GET of a route answers with its status, type and body", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes());
  REQUIRE(endpoint.port() != 0);

  Client client(endpoint.port());
  client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string response = client.ReadUntilClosed();
  CHECK_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  CHECK_THAT(response, Contains("Content-Type: text/plain; version=0.0.4\r\n"));
  CHECK_THAT(response, Contains("Content-Length: 5\r\n"));
  CHECK(Body(response) == "up 1\n");

  SECTION("the route's own status passes through, and a query string is ignored") {
    Client health(endpoint.port());
    health.Send("GET /health?verbose=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::string unavailable = health.ReadUntilClosed();
    CHECK_THAT(unavailable, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(Body(unavailable) == "{\"status\":\"unavailable\"}\n");
  }
  SECTION("a kept-alive connection serves one request after another") {
    Client kept(endpoint.port());
    kept.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_THAT(kept.ReadResponse(), StartsWith("HTTP/1.1 200 OK\r\n"));
    kept.Send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK_THAT(kept.ReadUntilClosed(), StartsWith("HTTP/1.1 503"));
  }
}

TEST_CASE("another path is 404 and lists the routes; another method is 405", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes());
  Client client(endpoint.port());
  client.Send("GET /metrics/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string missing = client.ReadResponse();
  CHECK_THAT(missing, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  CHECK(Body(missing) == "not found; served: /broken, /health, /metrics\n");

  client.Send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  const std::string posted = client.ReadResponse();
  CHECK_THAT(posted, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  CHECK_THAT(posted, Contains("Allow: GET\r\n"));

  // The connection survived both: they were well-formed requests.
  client.Send("DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK_THAT(client.ReadUntilClosed(), StartsWith("HTTP/1.1 405"));
}

TEST_CASE("a route that throws is 500 with its message", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes());
  Client client(endpoint.port());
  client.Send("GET /broken HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string response = client.ReadUntilClosed();
  CHECK_THAT(response, StartsWith("HTTP/1.1 500 Internal Server Error\r\n"));
  CHECK(Body(response) == "the route failed\n");
}

TEST_CASE("a request the endpoint cannot take gets a 4xx and a closed connection", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes(), HttpEndpoint::Limits{.max_header_bytes = 1024});
  Client client(endpoint.port());
  SECTION("a header over the limit is 431") {
    client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(3000, 'a') + "\r\n\r\n");
    const std::string response = client.ReadUntilClosed();
    CHECK_THAT(response, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    CHECK(Body(response) == "request header larger than 1024 bytes\n");
  }
  SECTION("bytes that are not HTTP are 400") {
    client.Send("\x16\x03\x01\x02\x00 TLS hello\r\n\r\n");
    CHECK_THAT(client.ReadUntilClosed(), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  }
  SECTION("a request with a body is 400") {
    client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    const std::string response = client.ReadUntilClosed();
    CHECK_THAT(response, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
    CHECK(Body(response) == "a request body is not accepted\n");
  }
}

TEST_CASE("a client that sends nothing, or not the whole request, is cut off at the timeout", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes(), HttpEndpoint::Limits{.timeout = 300ms});
  Client client(endpoint.port());
  SECTION("nothing at all") {}
  SECTION("half a request header") { client.Send("GET /metrics HTTP/1.1\r\nHost:"); }
  const auto start = Clock::now();
  CHECK(client.ReadUntilClosed(5s).empty());
  const auto waited = Clock::now() - start;
  CHECK(waited >= 250ms);
  CHECK(waited < 3s);
}

TEST_CASE("connections beyond the limit are closed at once; a freed place is taken again", "[http]") {
  HttpEndpoint endpoint("127.0.0.1", 0, Routes(), HttpEndpoint::Limits{.max_connections = 2, .timeout = 10s});
  // Two served connections, kept open: both are counted.
  Client first(endpoint.port());
  Client second(endpoint.port());
  for (Client* client : {&first, &second}) {
    client->Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_THAT(client->ReadResponse(), StartsWith("HTTP/1.1 200"));
  }
  Client third(endpoint.port());
  third.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  // Closed well before the 10 s read timeout, unanswered.
  CHECK(third.ReadUntilClosed(2s).empty());

  first.Close();
  // The endpoint frees the place once it reads the end of the first connection.
  std::string answer;
  for (const auto deadline = Clock::now() + 5s; answer.empty() && Clock::now() < deadline;) {
    Client again(endpoint.port());
    again.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    answer = again.ReadUntilClosed(2s);
    if (answer.empty()) std::this_thread::sleep_for(20ms);
  }
  CHECK_THAT(answer, StartsWith("HTTP/1.1 200"));
}

TEST_CASE("the endpoint stops at once with clients connected, and then refuses connections", "[http]") {
  std::optional<HttpEndpoint> endpoint;
  endpoint.emplace("127.0.0.1", 0, Routes(), HttpEndpoint::Limits{.timeout = 60s});
  const std::uint16_t port = endpoint->port();
  Client idle(port);
  Client kept(port);
  kept.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_THAT(kept.ReadResponse(), StartsWith("HTTP/1.1 200"));
  const auto start = Clock::now();
  endpoint.reset();
  CHECK(Clock::now() - start < 2s);
  CHECK(idle.ReadUntilClosed(2s).empty());
  CHECK(kept.ReadUntilClosed(2s).empty());
  CHECK_THROWS_WITH(Client(port), StartsWith("connect: Connection refused"));
}

TEST_CASE("an address it cannot listen on is refused, naming it", "[http]") {
  HttpEndpoint taken("127.0.0.1", 0, Routes());
  const std::string where = "127.0.0.1:" + std::to_string(taken.port());
  CHECK_THROWS_MATCHES(HttpEndpoint("127.0.0.1", taken.port(), Routes()), HttpEndpointError,
                       Catch::Matchers::Message("cannot listen on " + where + ": Address already in use"));
  CHECK_THROWS_MATCHES(HttpEndpoint("localhost", 9100, Routes()), HttpEndpointError,
                       Catch::Matchers::Message("cannot listen on localhost:9100: not an IP address"));
}
