// workflowctl: the operator's client. `workflowctl send QUEUE --json BODY` starts work by hand.

#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

#include "config.hpp"
#include "producer_runtime.hpp"

namespace po = boost::program_options;
using namespace workflowd;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

constexpr const char* kUsage =
    "Usage: workflowctl [--config FILE] COMMAND [options]\n\n"
    "Commands:\n"
    "  send QUEUE --json BODY [--src-tag T] [--dest-tag T]\n"
    "      publish BODY (a JSON object with an IncidentID) to QUEUE, stamped with a new\n"
    "      MessageID, and wait for the broker's confirm\n\n";

int Send(const Settings& settings, const po::variables_map& arguments) {
  if (arguments.count("json") == 0) {
    std::cerr << "workflowctl send: --json BODY is required\n";
    return kExitUsage;
  }
  const std::string& queue = arguments["queue"].as<std::string>();
  workflow::Message message;
  try {
    message = workflow::Message::Parse(arguments["json"].as<std::string>());
  } catch (const workflow::MessageError& error) {
    std::cerr << "workflowctl send: --json: " << error.what() << "\n";
    return kExitUsage;
  }
  try {
    ProducerRuntime runtime(settings.broker);
    workflow::host::InstallRuntime(&runtime);
    workflow::send(message, queue, arguments["src-tag"].as<std::string>(),
                   arguments["dest-tag"].as<std::string>(), "workflowctl");
    workflow::FlushMessages();
    workflow::host::InstallRuntime(nullptr);
  } catch (const workflow::MessageError& error) {
    std::cerr << "workflowctl send: " << error.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& error) {
    workflow::host::InstallRuntime(nullptr);
    std::cerr << "workflowctl send: " << error.what() << "\n";
    return kExitFailure;
  }
  std::cout << "sent to " << queue << " for incident " << message.incident_id() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description options("Options");
  options.add_options()
      ("help,h", "show this help and exit")
      ("config,c", po::value<std::string>()->default_value("/etc/workflowd/workflowd.yaml"),
       "the workflowd config file (for the broker settings)")
      ("json", po::value<std::string>(), "send: the message body")
      ("src-tag", po::value<std::string>()->default_value(""), "send: the src_tag header")
      ("dest-tag", po::value<std::string>()->default_value(""), "send: the dest_tag header");
  po::options_description positional_options;
  positional_options.add_options()
      ("command", po::value<std::string>())
      ("queue", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("command", 1).add("queue", 1);
  po::options_description all;
  all.add(options).add(positional_options);

  po::variables_map arguments;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), arguments);
    po::notify(arguments);
  } catch (const po::error& error) {
    std::cerr << "workflowctl: " << error.what() << "; see workflowctl --help\n";
    return kExitUsage;
  }
  if (arguments.count("help") != 0 || arguments.count("command") == 0) {
    std::cout << kUsage << options;
    return arguments.count("help") != 0 ? 0 : kExitUsage;
  }
  const std::string& command = arguments["command"].as<std::string>();
  if (command != "send") {
    std::cerr << "workflowctl: unknown command '" << command << "'; see workflowctl --help\n";
    return kExitUsage;
  }
  if (arguments.count("queue") == 0) {
    std::cerr << "workflowctl send: QUEUE is required\n";
    return kExitUsage;
  }

  Settings settings;
  try {
    settings = LoadConfig(arguments["config"].as<std::string>());
  } catch (const ConfigError& error) {
    std::cerr << "workflowctl: " << error.what() << "\n";
    return kExitUsage;
  }
  return Send(settings, arguments);
}
