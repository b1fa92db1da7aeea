// A well-formed plugin: two handlers on two queues.
#include <workflow/workflow.hpp>

#include <string>

namespace {

void GreetHandler(workflow::Message& message) {
  message.Set("greeting", "hello " + std::string(message.GetString("name")));
  workflow::send(message, "good_greeted", "greet", "greeted");
}

void EchoHandler(workflow::Message& message) { workflow::send(message, "good_echoed"); }

void RegisterHandlers() {
  workflow::RegisterHandler(WORKFLOW_HANDLER(GreetHandler), "good_greet");
  workflow::RegisterHandler(WORKFLOW_HANDLER(EchoHandler), "good_echo");
}

}  // namespace

WORKFLOW_PLUGIN(RegisterHandlers)
