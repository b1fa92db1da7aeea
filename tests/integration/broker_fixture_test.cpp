// The integration-test fixture itself, against a real broker: the private node starts, serves
// a fresh vhost, round-trips messages with their headers, counts them, and keeps a durable
// queue's persistent messages across a restart and a crash.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/amqp_client.hpp"
#include "support/broker_node.hpp"
#include "support/shared_broker.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using workflowd::testing::AmqpClient;
using workflowd::testing::BrokerNode;
using workflowd::testing::Delivery;
using workflowd::testing::SharedBroker;
using workflowd::testing::UniqueVhost;

TEST_CASE("the shared broker serves a fresh vhost", "[broker]") {
  BrokerNode& broker = SharedBroker();
  REQUIRE(broker.IsRunning());
  const std::string vhost = UniqueVhost("fixture");
  AmqpClient client(broker.amqp_port(), vhost);
  client.DeclareQueue("stage.in");

  SECTION("a published message comes back with its body, headers and properties") {
    client.Publish("stage.in", R"({"IncidentID":"i-1"})",
                   {{"src_tag", "from"}, {"dest_tag", "to"}});
    const std::vector<Delivery> got = client.Consume("stage.in", 1, 5s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].body == R"({"IncidentID":"i-1"})");
    CHECK(got[0].headers == workflowd::testing::Headers{{"src_tag", "from"}, {"dest_tag", "to"}});
    CHECK(got[0].content_type == "application/json");
    CHECK_FALSE(got[0].redelivered);
    // Consume acknowledged it: nothing is left, ready or unacknowledged.
    CHECK(client.MessageCount("stage.in") == 0);
    CHECK(broker.ListQueues(vhost) == std::map<std::string, std::size_t>{{"stage.in", 0}});
  }

  SECTION("MessageCount, ListQueues, Consume and Purge agree on what a queue holds") {
    for (int i = 1; i <= 3; ++i) client.Publish("stage.in", R"({"n":)" + std::to_string(i) + "}");
    CHECK(client.MessageCount("stage.in") == 3);
    CHECK(broker.ListQueues(vhost) == std::map<std::string, std::size_t>{{"stage.in", 3}});

    // In publish order; a request for more than there is returns what came within the timeout.
    const auto got = client.Consume("stage.in", 2, 5s);
    REQUIRE(got.size() == 2);
    CHECK(got[0].body == R"({"n":1})");
    CHECK(got[1].body == R"({"n":2})");
    CHECK(client.MessageCount("stage.in") == 1);
    CHECK(client.Purge("stage.in") == 1);
    CHECK(client.Consume("stage.in", 1, 200ms).empty());
  }

  SECTION("vhosts do not share queues") {
    client.Publish("stage.in", "{}");
    const std::string other = UniqueVhost("fixture");
    CHECK(broker.ListQueues(other).empty());
    AmqpClient elsewhere(broker.amqp_port(), other);
    REQUIRE_THROWS_WITH(elsewhere.MessageCount("stage.in"), Contains("NOT_FOUND"));
    CHECK(client.MessageCount("stage.in") == 1);
  }

  SECTION("errors say what failed, and the client stays usable after a channel error") {
    REQUIRE_THROWS_WITH(client.Publish("no.such.queue", "{}"),
                        Contains("no.such.queue") && Contains("NO_ROUTE"));
    REQUIRE_THROWS_WITH(client.MessageCount("no.such.queue"),
                        Contains("no.such.queue") && Contains("NOT_FOUND"));
    client.Publish("stage.in", "{}");
    CHECK(client.MessageCount("stage.in") == 1);
    REQUIRE_THROWS_WITH(AmqpClient(broker.amqp_port(), "no-such-vhost"),
                        Contains("no-such-vhost") && Contains("NOT_ALLOWED"));
  }

  SECTION("a deleted vhost refuses clients") {
    const std::string doomed = UniqueVhost("doomed");
    { AmqpClient before(broker.amqp_port(), doomed); }
    broker.DeleteVhost(doomed);
    REQUIRE_THROWS_WITH(AmqpClient(broker.amqp_port(), doomed), Contains(doomed));
  }
}

TEST_CASE("a durable queue keeps its persistent messages across a restart and a crash",
          "[broker]") {
  BrokerNode broker;
  broker.Start();
  const auto port = broker.amqp_port();
  broker.AddVhost("durable");
  {
    AmqpClient client(port, "durable");
    client.DeclareQueue("kept");
    client.Publish("kept", R"({"IncidentID":"before-restart"})", {{"src_tag", "s"}});
  }

  broker.Restart();
  REQUIRE(broker.amqp_port() == port);
  {
    AmqpClient client(port, "durable");
    REQUIRE(client.MessageCount("kept") == 1);
    client.Publish("kept", R"({"IncidentID":"before-crash"})");
  }

  broker.Kill();
  REQUIRE_FALSE(broker.IsRunning());
  REQUIRE_THROWS_WITH(AmqpClient(port, "durable"), Contains(std::to_string(port)));

  broker.Restart();
  AmqpClient client(port, "durable");
  const auto got = client.Consume("kept", 2, 5s);
  REQUIRE(got.size() == 2);
  CHECK(got[0].body == R"({"IncidentID":"before-restart"})");
  CHECK(got[0].headers == workflowd::testing::Headers{{"src_tag", "s"}});
  CHECK(got[1].body == R"({"IncidentID":"before-crash"})");
}

TEST_CASE("a node that cannot start says why and quotes its log", "[broker]") {
  BrokerNode broker;
  // Take the node's AMQP port first: its listener cannot open, so the boot fails.
  const int squatter = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(squatter >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(broker.amqp_port());
  REQUIRE(::bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(squatter, 1) == 0);

  REQUIRE_THROWS_WITH(broker.Start(), Contains(broker.node_name()) && Contains("eaddrinuse"));
  CHECK_FALSE(broker.IsRunning());
  ::close(squatter);
}
