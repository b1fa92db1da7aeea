#pragma once

#include <string>

namespace workflow {

// A message that send() has enqueued: the serialised body (MessageID and originator stamped)
// and what the broker needs to route it. Hosts publish these; tests inspect them.
struct OutgoingMessage {
  std::string queue;
  std::string body;
  std::string message_id;
  std::string incident_id;
  std::string originator;
  std::string src_tag;
  std::string dest_tag;
};

}  // namespace workflow
