#pragma once

#include <string>
#include <string_view>

#include "broker_node.hpp"

namespace workflowd::testing {

// The broker node of this test process: started on first use, since a start costs ~8 s, and
// stopped at exit. Tests share it and isolate themselves with UniqueVhost(); the node and all
// its vhosts are thrown away at exit, so nothing needs deleting. A test that stops, kills or
// restarts a broker makes its own BrokerNode instead. If a test left it stopped anyway, the next
// call starts it again.
//
// catch_discover_tests runs every TEST_CASE in a process of its own, so each TEST_CASE that
// uses the shared broker pays one start: group checks that share a setup into one TEST_CASE
// with SECTIONs.
BrokerNode& SharedBroker();

// Creates a vhost on SharedBroker() that no other test uses, and returns its name
// ("<prefix>-<n>").
std::string UniqueVhost(std::string_view prefix = "test");

}  // namespace workflowd::testing
