// workflowd: loads workflow plugins and runs their stages on messages from RabbitMQ.

#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <thread>

#include <boost/program_options.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <workflow/host.hpp>
#include <workflow/version.hpp>

#include "cleanup_stage.hpp"
#include "config.hpp"
#include "crash_loop_guard.hpp"
#include "daemon_runtime.hpp"
#include "dispatcher.hpp"
#include "handler_registry.hpp"
#include "health_monitor.hpp"
#include "http_endpoint.hpp"
#include "logging.hpp"
#include "incident_service.hpp"
#include "message_log.hpp"
#include "metrics.hpp"
#include "plugin_loader.hpp"
#include "prometheus_text.hpp"
#include "run_handler.hpp"
#include "sqlite_state_store.hpp"
#include "systemd_service.hpp"

namespace po = boost::program_options;
using namespace workflowd;

namespace {

constexpr int kExitUsage = 2;  // bad command line or config
constexpr int kExitFailure = 1;
constexpr const char* kDefaultConfig = "/etc/workflowd/workflowd.yaml";

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (workers inherit the mask) and returns a
// signalfd that the I/O thread polls, so no code runs in signal-handler context.
int TakeSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a dead broker socket must be an error, not a kill
  return signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

// Who processed a message, in the message log: this host and process.
std::string ConsumerId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

// /metrics and /health on settings' address and port.
std::unique_ptr<HttpEndpoint> StartMetricsEndpoint(const MetricsSettings& settings, const HandlerRegistry& registry,
                                                   const DaemonMetrics& metrics, const HealthMonitor& health) {
  HttpRoutes routes;
  routes["/metrics"] = [&registry, &metrics] {
    return HttpReply{200, std::string(PrometheusText::kContentType), RenderMetrics(registry, metrics)};
  };
  routes["/health"] = [&health] {
    HealthMonitor::Report report = health.Check();
    return HttpReply{report.healthy ? 200u : 503u, "application/json", std::move(report.json)};
  };
  auto endpoint = std::make_unique<HttpEndpoint>(settings.address, settings.port, std::move(routes));
  spdlog::info("metrics: serving /metrics and /health on {} port {}", settings.address, endpoint->port());
  return endpoint;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description options("workflowd options");
  options.add_options()
      ("help,h", "show this help and exit")
      ("version", "show the version and exit")
      ("config,c", po::value<std::string>()->default_value(kDefaultConfig), "the YAML config file")
      ("plugins-dir", po::value<std::string>(), "load plugins from this directory (overrides plugins_dir)")
      ("workers", po::value<unsigned>(), "handler threads; 0 = one per core (overrides workers)")
      ("log-level", po::value<std::string>(), "trace, debug, info, warning or error (overrides log_level)")
      ("check-config", "validate the config, load the plugins, print the handler table and exit");
  po::variables_map arguments;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), arguments);
    po::notify(arguments);
  } catch (const po::error& error) {
    std::cerr << "workflowd: " << error.what() << "; see workflowd --help\n";
    return kExitUsage;
  }
  if (arguments.count("help") != 0) {
    std::cout << "Usage: workflowd [options]\n\n" << options;
    return 0;
  }
  if (arguments.count("version") != 0) {
    std::cout << "workflowd " << WORKFLOW_VERSION_STRING << " (plugin ABI " << WORKFLOW_ABI_MAJOR
              << "." << WORKFLOW_ABI_MINOR << ")\n";
    return 0;
  }

  Settings settings;
  Settings file_settings;  // without the command line's overrides: what a reload compares with
  ConfigWarnings config_warnings;  // logged once logging is set up from the config
  try {
    file_settings = LoadConfig(arguments["config"].as<std::string>(), &config_warnings);
    settings = file_settings;
    if (arguments.count("plugins-dir") != 0) settings.plugins_dir = arguments["plugins-dir"].as<std::string>();
    if (arguments.count("workers") != 0) {
      unsigned workers = arguments["workers"].as<unsigned>();
      settings.workers = workers != 0 ? workers : std::max(1u, std::thread::hardware_concurrency());
    }
    if (arguments.count("log-level") != 0) {
      try {
        settings.log_level = ParseLogLevel(arguments["log-level"].as<std::string>());
      } catch (const ConfigError& error) {
        throw ConfigError(std::string("--log-level: ") + error.what());
      }
    }
  } catch (const ConfigError& error) {
    std::cerr << "workflowd: " << error.what() << "\n";
    return kExitUsage;
  }

  SetUpLogging(settings.log_level);
  for (const std::string& warning : config_warnings) spdlog::warn("{}", warning);
  const bool check_only = arguments.count("check-config") != 0;
  if (!check_only) spdlog::info("workflowd {} starting", WORKFLOW_VERSION_STRING);
  int signal_fd = TakeSignals();
  if (signal_fd < 0) {
    spdlog::critical("cannot create a signalfd: {}", std::strerror(errno));
    return kExitFailure;
  }

  // Declared first, destroyed last: the plugins outlive everything that holds their code,
  // the registry's handlers, the workers, the runtime.
  std::vector<LoadedPlugin> plugins;
  HandlerRegistry registry;
  try {
    plugins = LoadPlugins(settings.plugins_dir, registry);
  } catch (const PluginLoadError& error) {
    spdlog::critical("{}", error.what());
    return kExitFailure;
  }
  if (check_only) {
    std::cout << registry.Table();
    return 0;
  }

  // The message log writes through a connection of its own: in WAL mode the workers' reads go
  // on while it commits, instead of queueing behind its transaction for the one connection.
  std::unique_ptr<StateStore> store;
  std::unique_ptr<StateStore> log_store;
  try {
    store = OpenSqliteStateStore(settings.state.path);
    log_store = OpenSqliteStateStore(settings.state.path);
  } catch (const StateStoreError& error) {
    spdlog::critical("state store: {}", error.what());
    return kExitFailure;
  }
  MessageLog message_log(*log_store, settings.state.message_log);
  CleanupStage cleanup(*store, message_log, settings.state.cleanup_timeout);
  registry.AddBuiltin(cleanup.handler(), kCleanupQueue);
  IncidentCache incident_cache(*store);
  IncidentService incidents(*store, incident_cache);
  CrashLoopGuard crash_loop_guard(*store, settings);
  HandlerRunner runner(*store, incident_cache, message_log, settings.state, crash_loop_guard, ConsumerId());

  SystemdService service(arguments["config"].as<std::string>(), file_settings);
  DaemonMetrics metrics;
  HealthMonitor health(service, metrics, settings.workers, settings.metrics.stall_timeout);
  Dispatcher dispatcher(settings, registry, runner, message_log, health, metrics);
  // After the registry is complete (the routes read it unlocked) and before the dispatcher
  // runs; destroyed before everything its routes read.
  std::unique_ptr<HttpEndpoint> endpoint;
  if (settings.metrics.port != 0) {
    try {
      endpoint = StartMetricsEndpoint(settings.metrics, registry, metrics, health);
    } catch (const HttpEndpointError& error) {
      spdlog::critical("metrics: {}", error.what());
      return kExitFailure;
    }
  }
  DaemonRuntime runtime(dispatcher, incidents);
  workflow::host::InstallRuntime(&runtime);
  service.Starting();
  int exit_code = dispatcher.Run(signal_fd);
  if (dispatcher.handlers_abandoned()) {
    // Their deliveries are unacknowledged and will be delivered again; waiting for the
    // handlers would only hold up the exit past the configured timeout.
    spdlog::warn("exiting with handlers still running");
    spdlog::shutdown();
    std::_Exit(exit_code);
  }
  // No handler may run once the runtime it calls through is gone.
  dispatcher.StopWorkers();
  workflow::host::InstallRuntime(nullptr);
  return exit_code;
}
