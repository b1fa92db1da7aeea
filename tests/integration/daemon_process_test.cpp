// DaemonProcess, the harness that runs workflowd in the integration tests, driving a shell
// script that stands in for a daemon.

#include <csignal>

#include <catch2/catch.hpp>

#include "support/daemon_process.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using workflowd::testing::DaemonProcess;

namespace {

// Arguments for /bin/sh: print a greeting on stdout and a line on stderr, then run until
// SIGTERM, answered with exit code 3.
const std::vector<std::string> kStandIn{"-c", R"(echo "started: $GREETING"; echo "on stderr" >&2
             trap 'echo "got TERM"; exit 3' TERM
             while :; do sleep 0.05; done)"};

}  // namespace

TEST_CASE("DaemonProcess runs a program and follows its output", "[daemon_process]") {
  DaemonProcess daemon("/bin/sh", kStandIn, {{"GREETING", "hello"}});
  daemon.WaitForLog("started: hello", 10s);
  daemon.WaitForLog("on stderr", 10s);
  REQUIRE(daemon.IsRunning());

  SECTION("a signal stops it, and WaitExit reports its exit code") {
    daemon.Signal(SIGTERM);
    REQUIRE(daemon.WaitExit(10s) == 3);
    CHECK_THAT(daemon.Log(), Contains("got TERM"));
    CHECK_FALSE(daemon.IsRunning());
    REQUIRE_THROWS_WITH(daemon.Signal(SIGTERM), Contains("exited with code 3"));
  }

  SECTION("Kill9 ends it at once") {
    daemon.Kill9();
    CHECK_FALSE(daemon.IsRunning());
    CHECK(daemon.WaitExit(1s) == 128 + SIGKILL);
  }

  SECTION("waiting for text that never comes fails with the output") {
    REQUIRE_THROWS_WITH(daemon.WaitForLog("never printed", 300ms),
                        Contains("never printed") && Contains("started: hello"));
    REQUIRE_THROWS_WITH(daemon.WaitForLog("started", 300ms, 2), Contains("(x2)"));
  }

  SECTION("WaitExit kills a process that does not exit in time") {
    REQUIRE_THROWS_WITH(daemon.WaitExit(200ms), Contains("killed"));
    CHECK_FALSE(daemon.IsRunning());
  }
}

TEST_CASE("DaemonProcess reports a program that cannot start", "[daemon_process]") {
  REQUIRE_THROWS_WITH(DaemonProcess("/nonexistent/workflowd", {}),
                      Contains("/nonexistent/workflowd"));
}

TEST_CASE("DaemonProcess notices a program that exits before printing what is awaited",
          "[daemon_process]") {
  DaemonProcess daemon("/bin/sh", {"-c", "echo bad config; exit 2"});
  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(daemon.WaitForLog("ready", 30s),
                      Contains("exited with code 2") && Contains("bad config"));
  // It gives up when the process is gone, not when the timeout ends.
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(daemon.WaitExit(1s) == 2);
}
