#include "daemon_runtime.hpp"

namespace workflowd {

void DaemonRuntime::RegisterHandler(workflow::Handler handler, std::string_view queue) {
  throw workflow::RegistrationError("RegisterHandler(" + handler.name + ", '" + std::string(queue) +
                                    "') was called outside RegisterHandlers: register handlers "
                                    "only in the plugin's entry point, while the daemon loads it");
}

void DaemonRuntime::Publish(const std::vector<workflow::OutgoingMessage>& messages) {
  dispatcher_.PublishAndWait(messages);
}

}  // namespace workflowd
