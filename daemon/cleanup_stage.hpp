#pragma once

#include <chrono>

#include <workflow/workflow.hpp>

#include "message_log.hpp"
#include "state_store.hpp"

namespace workflowd {

// The built-in _Cleanup stage. Once an incident has ended, it removes the incident's persisted
// records and leases when none of its messages is in flight any more, checking again through
// the delay queue meanwhile; after `timeout` it removes them anyway. A cleanup message with
// "force": true removes them at once.
//
// "In flight" is read from the message log, so it is known only at message_log: all; at a
// lower level cleanup cannot see the messages and removes at once.
class CleanupStage {
 public:
  CleanupStage(StateStore& store, MessageLog& log, std::chrono::seconds timeout)
      : store_(store), log_(log), timeout_(timeout) {}

  workflow::Handler handler();

 private:
  void Run(workflow::Message& message);

  StateStore& store_;
  MessageLog& log_;
  std::chrono::seconds timeout_;
};

}  // namespace workflowd
