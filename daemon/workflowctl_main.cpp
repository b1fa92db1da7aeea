// workflowctl: the operator's client. Starts, sends to, cancels and inspects incidents.

#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <workflow/host.hpp>
#include <workflow/workflow.hpp>

#include "config.hpp"
#include "dead_letter_report.hpp"
#include "incident_report.hpp"
#include "incident_service.hpp"
#include "message_log.hpp"
#include "producer_runtime.hpp"
#include "sqlite_state_store.hpp"
#include "usage_error.hpp"

namespace po = boost::program_options;
using namespace workflowd;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

struct Command {
  const char* synopsis;
  const char* summary;
  std::function<void(po::options_description&)> options;
  std::function<int(const Settings&, const po::variables_map&)> run;
  // Whether a second positional argument, "argument", follows "target".
  bool takes_argument = false;
};

std::string Required(const po::variables_map& arguments, const char* name, const char* what) {
  if (arguments.count(name) == 0) throw UsageError(std::string(what) + " is required");
  return arguments[name].as<std::string>();
}

workflow::Message ParseBody(const std::string& json) {
  try {
    return workflow::Message::Parse(json);
  } catch (const workflow::MessageError& error) {
    throw UsageError(std::string("--json: ") + error.what());
  }
}

std::unique_ptr<StateStore> OpenStore(const Settings& settings) {
  return OpenSqliteStateStore(settings.state.path);
}

// Publishes what `produce` sends, on a connection of this program, and waits for the confirms.
void Produce(const Settings& settings, IncidentService* incidents, const std::function<void()>& produce) {
  ProducerRuntime runtime(settings.broker, incidents);
  workflow::host::InstallRuntime(&runtime);
  try {
    produce();
    workflow::FlushMessages();
  } catch (...) {
    workflow::host::InstallRuntime(nullptr);
    throw;
  }
  workflow::host::InstallRuntime(nullptr);
}

int Send(const Settings& settings, const po::variables_map& arguments) {
  const std::string queue = Required(arguments, "target", "QUEUE");
  workflow::Message message = ParseBody(Required(arguments, "json", "--json BODY"));
  if (message.incident_id().empty()) {
    throw UsageError("--json: the message has no IncidentID; every message belongs to an incident");
  }
  Produce(settings, nullptr, [&] {
    workflow::send(message, queue, arguments["src-tag"].as<std::string>(),
                   arguments["dest-tag"].as<std::string>(), "workflowctl");
  });
  std::cout << "sent to " << queue << " for incident " << message.incident_id() << "\n";
  return 0;
}

int Start(const Settings& settings, const po::variables_map& arguments) {
  const std::string kind = Required(arguments, "target", "KIND");
  auto workflow = settings.workflows.find(kind);
  if (workflow == settings.workflows.end()) {
    std::string known;
    for (const auto& [name, unused] : settings.workflows) known += (known.empty() ? "" : ", ") + name;
    throw UsageError("no workflow kind '" + kind + "' in the config's workflows section (known: " +
                     (known.empty() ? "none" : known) + ")");
  }
  workflow::Message message = ParseBody(arguments.count("json") ? arguments["json"].as<std::string>() : "{}");
  const std::string name = Required(arguments, "name", "--name NAME");
  auto store = OpenStore(settings);
  IncidentCache cache(*store);
  IncidentService incidents(*store, cache);
  std::string incident;
  Produce(settings, &incidents, [&] {
    incident = workflow::CreateIncident(name, kind, arguments["comment"].as<std::string>());
    message.Set(workflow::kIncidentIdField, incident);
    workflow::send(message, workflow->second.init_queue, {}, {}, "workflowctl");
  });
  std::cout << incident << "\n";
  return 0;
}

int Cancel(const Settings& settings, const po::variables_map& arguments) {
  const std::string incident_id = Required(arguments, "target", "INCIDENT");
  const std::string reason = arguments["reason"].as<std::string>();
  auto store = OpenStore(settings);
  std::optional<Incident> incident = store->FindIncident(incident_id);
  if (!incident) throw UsageError("no incident " + incident_id);
  if (IsEnded(incident->status)) {
    std::cout << "incident " << incident_id << " has already ended: " << ToString(incident->status) << "\n";
    return 0;
  }
  IncidentCache cache(*store);
  IncidentService incidents(*store, cache);
  auto workflow = settings.workflows.find(incident->kind);
  if (workflow != settings.workflows.end() && !workflow->second.shutdown_queue.empty()) {
    // The workflow shuts itself down: its shutdown stage decides what cancelling means.
    Produce(settings, &incidents, [&] {
      workflow::Message message = workflow::Message::ForIncident(incident_id);
      message.Set("reason", reason);
      workflow::send(message, workflow->second.shutdown_queue, {}, {}, "workflowctl");
    });
    std::cout << "asked " << workflow->second.shutdown_queue << " to shut incident " << incident_id << " down\n";
  } else {
    Produce(settings, &incidents, [&] { workflow::Cancel(incident_id, reason); });
    std::cout << "incident " << incident_id << " CANCELLED\n";
  }
  return 0;
}

int Cleanup(const Settings& settings, const po::variables_map& arguments) {
  const std::string incident_id = Required(arguments, "target", "INCIDENT");
  const bool force = arguments.count("force") != 0;
  Produce(settings, nullptr, [&] {
    workflow::Message message = workflow::Message::ForIncident(incident_id);
    message.Set("requested_at", NowMs()).Set("force", force);
    workflow::send(message, kCleanupQueue, {}, {}, "workflowctl");
  });
  std::cout << "asked " << kCleanupQueue << " to remove the records of incident " << incident_id
            << (force ? " now, messages in flight or not" : " once none of its messages is in flight") << "\n";
  return 0;
}

const std::map<std::string, Command>& Commands() {
  static const std::map<std::string, Command> commands = {
      {"send",
       {"send QUEUE --json BODY [--src-tag T] [--dest-tag T]",
        "publish BODY (a JSON object with an IncidentID) to QUEUE and wait for the broker's confirm",
        [](po::options_description& options) {
          options.add_options()("json", po::value<std::string>(), "the message body")
              ("src-tag", po::value<std::string>()->default_value(""), "the src_tag header")
              ("dest-tag", po::value<std::string>()->default_value(""), "the dest_tag header");
        },
        Send}},
      {"start",
       {"start KIND --name NAME [--json BODY] [--comment TEXT]",
        "create an incident of a workflow kind of the config and send BODY to its init queue; "
        "prints the incident id",
        [](po::options_description& options) {
          options.add_options()("name", po::value<std::string>(), "the incident's name")
              ("json", po::value<std::string>(), "the first message's body (default {})")
              ("comment", po::value<std::string>()->default_value(""), "a comment on the incident");
        },
        Start}},
      {"cancel",
       {"cancel INCIDENT [--reason TEXT]",
        "cancel an incident: through its kind's shutdown queue when it has one, else at once",
        [](po::options_description& options) {
          options.add_options()("reason", po::value<std::string>()->default_value("cancelled by workflowctl"),
                                "why");
        },
        Cancel}},
      {"cleanup",
       {"cleanup INCIDENT [--force]",
        "remove an ended incident's persisted records and leases (again); --force does not wait for "
        "its messages in flight",
        [](po::options_description& options) {
          options.add_options()("force", "remove now, even with messages in flight");
        },
        Cleanup}},
      {"list",
       {"list [--status STATUS] [--kind KIND] [--limit N]", "list incidents, newest first",
        AddListOptions, ListIncidents}},
      {"show",
       {"show INCIDENT [--json]", "show an incident and its message log", AddShowOptions, ShowIncident}},
      {"graph",
       {"graph INCIDENT [--format dot|svg|png] [-o FILE]",
        "draw an incident's workflow from its message log (svg and png need Graphviz's dot)",
        AddGraphOptions, GraphIncident}},
      {"dead-letters",
       {"dead-letters [resend MESSAGE_ID] [--queue QUEUE] [--limit N]",
        "list the dead-letter queue (its messages stay in it), or send the message MESSAGE_ID back to "
        "the queue it came from",
        AddDeadLetterOptions, DeadLetters, true}},
  };
  return commands;
}

void PrintUsage(std::ostream& out, const po::options_description& global) {
  out << "Usage: workflowctl [--config FILE] COMMAND [options]\n\nCommands:\n";
  for (const auto& [name, command] : Commands()) {
    out << "  " << command.synopsis << "\n      " << command.summary << "\n";
  }
  out << "\n" << global;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("Options");
  global.add_options()
      ("help,h", "show this help and exit")
      ("config,c", po::value<std::string>()->default_value("/etc/workflowd/workflowd.yaml"),
       "the workflowd config file (broker, state store, workflow kinds)");
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("rest", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("command", 1).add("rest", -1);

  std::string command_name = "workflowctl";
  try {
    po::options_description first;
    first.add(global).add(hidden);
    po::parsed_options parsed =
        po::command_line_parser(argc, argv).options(first).positional(positional).allow_unregistered().run();
    po::variables_map arguments;
    po::store(parsed, arguments);
    if (arguments.count("command") == 0) {
      PrintUsage(arguments.count("help") ? std::cout : std::cerr, global);
      return arguments.count("help") ? 0 : kExitUsage;
    }
    command_name = arguments["command"].as<std::string>();
    auto command = Commands().find(command_name);
    if (command == Commands().end()) {
      throw UsageError("unknown command; see workflowctl --help");
    }

    // The command's own options, from what follows the command name.
    std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
    rest.erase(rest.begin());
    po::options_description options(std::string("workflowctl ") + command->second.synopsis);
    options.add_options()("help,h", "show this help and exit");
    command->second.options(options);
    po::options_description all;
    all.add(options).add_options()("target", po::value<std::string>())("argument", po::value<std::string>());
    po::positional_options_description target;
    target.add("target", 1);
    if (command->second.takes_argument) target.add("argument", 1);
    po::variables_map command_arguments;
    po::store(po::command_line_parser(rest).options(all).positional(target).run(), command_arguments);
    po::notify(command_arguments);
    // The first parse takes --help wherever it stands: after a command, it asks for its help.
    if (arguments.count("help") != 0 || command_arguments.count("help") != 0) {
      std::cout << command->second.summary << "\n\n" << options;
      return 0;
    }
    ConfigWarnings warnings;
    const Settings settings = LoadConfig(arguments["config"].as<std::string>(), &warnings);
    for (const std::string& warning : warnings) std::cerr << "workflowctl: warning: " << warning << "\n";
    return command->second.run(settings, command_arguments);
  } catch (const po::error& error) {
    std::cerr << "workflowctl " << command_name << ": " << error.what() << "\n";
    return kExitUsage;
  } catch (const UsageError& error) {
    std::cerr << "workflowctl " << command_name << ": " << error.what() << "\n";
    return kExitUsage;
  } catch (const ConfigError& error) {
    std::cerr << "workflowctl: " << error.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& error) {
    std::cerr << "workflowctl " << command_name << ": " << error.what() << "\n";
    return kExitFailure;
  }
}
