#pragma once

#include <string>
#include <string_view>

#include "settings.hpp"
#include "state_store.hpp"

namespace workflowd {

// Stops a message that keeps killing workflowd. A handler that crashes the process (abort(), a
// segfault) leaves its delivery unacknowledged: the broker delivers it again after the restart,
// and the crash repeats forever. For classic queues the guard counts, in the state store, the
// deliveries of each message whose handler did not finish; once max_deliveries of them ended
// that way the message is dead-lettered instead of run again. Quorum queues are left to the
// broker's x-delivery-limit.
//
// Only a delivery the broker flags as redelivered is counted (one write before the handler runs,
// one after): an earlier delivery of it was not acknowledged. A first delivery costs nothing.
// What is counted are deliveries in a row that did not finish: any counted run that finishes, even
// one of a connection that was lost meanwhile, shows the message can finish, and the count starts
// again. (A first delivery is neither counted nor clears a count when it finishes.)
// A refused message keeps its count until `workflowctl dead-letters resend` sends it back (its
// dead letter names the key), or for StateStore::kUnfinishedDeliveryExpiry: a crash before its
// dead letter is confirmed brings it back to be refused again, not run.
// Thread-safe; never throws: when the store fails the handler runs uncounted.
class CrashLoopGuard {
 public:
  CrashLoopGuard(StateStore& store, const Settings& settings);

  // What Admit decided for one delivery.
  struct Admission {
    std::string key;      // the message's key in the store; empty when nothing was counted
    std::string refusal;  // not empty: do not run the handler, dead-letter it with this reason
                          // (then key is what its count stays under, and Finished keeps it)
  };

  // Before the handler runs. message_id is the message's id (the AMQP property or the body's
  // MessageID), or empty: then the body itself identifies the message.
  Admission Admit(const std::string& queue, bool redelivered, std::string_view message_id,
                  std::string_view body);
  // After the handler returned, whatever its verdict: the count of an admitted delivery goes.
  // Given a refusal it does nothing: a refused message's count stays.
  void Finished(const std::string& queue, const Admission& admission);

 private:
  bool Guards(const std::string& queue) const;

  StateStore& store_;
  const Settings& settings_;
};

}  // namespace workflowd
