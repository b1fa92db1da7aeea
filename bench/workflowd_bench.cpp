// workflowd_bench: workflowd against a bare rabbitmq-c relay (bare_relay) on one private
// RabbitMQ node, in the same run, so that a noisy machine cannot fake a result.
//
// For each variant and each repetition, workflowd first, then the relay, each on a fresh vhost:
//   1. throughput: N numbered messages are preloaded into pipeline_in, the consumer side starts
//      (workflowd with the pipeline test plugin, or bare_relay), and the clock runs from the
//      moment it logs that it consumes until the N-th distinct message reaches pipeline_out.
//      CPU is utime + stime of the consumer process(es) over the same span; peak RSS is VmHWM.
//   2. latency: with the queues empty, messages are published at a paced rate (half of
//      workflowd's throughput in this repetition, the same rate for the relay) for a few seconds.
//      The hop latency is handler to handler: from the first stage's send to the second stage's
//      start, stamped into each message by the stages themselves (hop_stamp.hpp). End to end is
//      publish -> arrival at pipeline_out: three queue hops and both stages.
// Prints one markdown table of medians, with workflowd/relay ratios per repetition (medians).
//
// --backlog N instead measures peak RSS with N messages waiting in the broker.

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include "bench_amqp.hpp"
#include "support/broker_node.hpp"
#include "support/daemon_process.hpp"
#include "process_stats.hpp"
#include "sqlite_state_store.hpp"
#include "support/temp_dir.hpp"

namespace po = boost::program_options;
using namespace workflowd::bench;
using workflowd::testing::BrokerNode;
using workflowd::testing::DaemonProcess;
using workflowd::testing::TempDir;

namespace {

constexpr const char* kIn = "pipeline_in";
constexpr const char* kMid = "pipeline_mid";
constexpr const char* kOut = "pipeline_out";
// A run that moves no message for this long has lost the rest.
constexpr std::chrono::seconds kStallTimeout{30};

enum class Side { kWorkflowd, kRelay };

const char* Name(Side side) { return side == Side::kWorkflowd ? "workflowd" : "bare relay"; }

struct Variant {
  std::string name;
  std::string description;
  unsigned workers = 4;
  bool message_log = true;
  bool quorum = false;
  int processes = 1;  // consumer processes on the one broker (the relay runs as many)
  unsigned fan_out = 0;  // 0: the two-stage pipeline; else the fan-out/fan-in shape, to this many
};

// What bench/plugins/fan.cpp sends each input to.
constexpr unsigned kFanOut = 4;

const std::vector<Variant>& AllVariants() {
  static const std::vector<Variant> variants = {
      {"base", "message log all, 4 workers, classic queues", 4, true, false, 1},
      {"log-off", "message log off, 4 workers, classic", 4, false, false, 1},
      {"w1", "message log all, 1 worker, classic", 1, true, false, 1},
      {"w2", "message log all, 2 workers, classic", 2, true, false, 1},
      {"quorum", "message log all, 4 workers, quorum queues", 4, true, true, 1},
      {"2-daemons", "2 daemons x 4 workers, one store; 2 relays", 4, true, false, 2},
      {"fan", "fan-out to 4 and fan-in, message log all, 4 workers, classic", 4, true, false, 1, kFanOut},
  };
  return variants;
}

struct Options {
  std::uint64_t messages = 20000;
  int repeat = 3;
  std::vector<std::string> variants;
  double latency_seconds = 5;
  double latency_rate = 0;  // 0: half of workflowd's throughput in the same repetition
  unsigned prefetch = 1000;
  unsigned incidents = 16;
  std::uint64_t backlog = 0;
  double backlog_seconds = 30;
  std::string perf_dir;
  std::string perf_args = "-e cpu-clock -F 1999 --call-graph dwarf,16384";
  std::string workflowd = WORKFLOWD_BINARY;
  std::string relay = BARE_RELAY_BINARY;
  std::string plugins_dir = BENCH_PLUGIN_DIR;
  std::string fan_plugins_dir = BENCH_FAN_PLUGIN_DIR;
  std::string relay_args;  // extra bare_relay options, for experiments
  std::string command;
  pid_t broker_pid = -1;  // the node's beam.smp, for its CPU time
};

struct Measurement {
  bool ok = false;
  std::string error;
  double rate = 0;        // messages/s end to end
  double cpu_per_1k = 0;  // consumer CPU seconds per 1,000 messages
  double broker_cpu_per_1k = 0;  // the broker's, over the same span
  double rss_mb = 0;      // peak RSS of the (largest) consumer process
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  bool has_latency = false;
  double latency_rate = 0;  // the paced rate that was achieved
  double hop_p50 = 0, hop_p99 = 0, hop_p999 = 0;  // ms, first stage's send -> second stage's start
  double end_to_end_p99 = 0;  // ms, publish -> arrival at pipeline_out
};

std::string Trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(text);
  while (std::getline(stream, part, separator)) {
    part = Trim(part);
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

double Median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return std::nan("");
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// One benchmark run's private things: a vhost, a state store, config files.
class RunContext {
 public:
  RunContext(BrokerNode& broker, const Options& options, const Variant& variant, Side side)
      : broker_(broker), options_(options), variant_(variant), side_(side), dir_("workflowd-bench") {
    static int runs = 0;
    vhost_ = "bench-" + std::to_string(++runs);
    broker_.AddVhost(vhost_);
    if (side == Side::kWorkflowd) {
      auto store = workflowd::OpenSqliteStateStore(dir_.path() / "state.db");
      for (unsigned i = 0; i < options.incidents; ++i) {
        incidents_.push_back(store->CreateIncident("pipeline", "bench-" + std::to_string(i)).id);
      }
    } else {
      // Ids of the same length: the relay does not look at them.
      for (unsigned i = 0; i < options.incidents; ++i) {
        char id[40];
        std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012u", i);
        incidents_.push_back(id);
      }
    }
    Connection setup(port(), vhost_, false);
    for (const char* queue : {kIn, kMid, kOut}) setup.DeclareQueue(queue, variant.quorum);
  }

  ~RunContext() {
    consumers_.clear();
    try {
      broker_.DeleteVhost(vhost_);
    } catch (const std::exception& error) {
      std::cerr << "bench: deleting vhost " << vhost_ << ": " << error.what() << "\n";
    }
  }

  std::uint16_t port() const { return broker_.amqp_port(); }
  const std::string& vhost() const { return vhost_; }
  const std::vector<std::string>& incidents() const { return incidents_; }
  std::vector<std::unique_ptr<DaemonProcess>>& consumers() { return consumers_; }

  // Starts the consumer process(es) and returns once all consume; the time (NowNs) the first
  // was seen consuming, and each one's CPU seconds at that point, are recorded.
  void StartConsumers() {
    for (int i = 0; i < variant_.processes; ++i) {
      if (side_ == Side::kWorkflowd) {
        const auto config = WriteConfig(i);
        consumers_.push_back(std::make_unique<DaemonProcess>(
            options_.workflowd, std::vector<std::string>{"--config", config.string()}));
      } else {
        std::vector<std::string> args{"--port", std::to_string(port()), "--vhost", vhost_, "--prefetch",
                                      std::to_string(options_.prefetch)};
        if (variant_.fan_out > 0) args.insert(args.end(), {"--fan-out", std::to_string(variant_.fan_out)});
        for (const std::string& arg : Split(options_.relay_args, ' ')) args.push_back(arg);
        consumers_.push_back(std::make_unique<DaemonProcess>(options_.relay, args));
      }
    }
    ready_ns_ = 0;
    cpu_at_ready_.assign(consumers_.size(), -1);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (;;) {
      bool all = true;
      for (std::size_t i = 0; i < consumers_.size(); ++i) {
        if (cpu_at_ready_[i] >= 0) continue;
        DaemonProcess& process = *consumers_[i];
        const bool exited = !process.IsRunning();
        if (process.Log().find("consuming") != std::string::npos && !exited) {
          const std::int64_t now = NowNs();
          cpu_at_ready_[i] = CpuSeconds(process.pid());
          if (ready_ns_ == 0) {
            ready_ns_ = now;
            broker_cpu_at_ready_ = BrokerCpu();
          }
          continue;
        }
        if (exited || Clock::now() > deadline) {
          throw std::runtime_error(std::string(Name(side_)) + " did not start consuming:\n" + process.Log());
        }
        all = false;
      }
      if (all) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::int64_t ready_ns() const { return ready_ns_; }
  double CpuSinceReady() const {
    double total = 0;
    for (std::size_t i = 0; i < consumers_.size(); ++i) total += CpuSeconds(consumers_[i]->pid()) - cpu_at_ready_[i];
    return total;
  }
  // CPU seconds of the broker since the first consumer was ready; 0 when its process is unknown.
  double BrokerCpuSinceReady() const { return BrokerCpu() - broker_cpu_at_ready_; }
  double PeakRssMb() const {
    std::uint64_t peak = 0;
    for (const auto& process : consumers_) peak = std::max(peak, ReadMemory(process->pid()).peak);
    return static_cast<double>(peak) / (1024.0 * 1024.0);
  }

  // SIGTERM, and a clean exit expected.
  void StopConsumers() {
    for (auto& process : consumers_) process->Signal(SIGTERM);
    for (auto& process : consumers_) {
      const int code = process->WaitExit(std::chrono::seconds(60));
      if (code != 0) {
        throw std::runtime_error(std::string(Name(side_)) + " exited with code " + std::to_string(code) + ":\n" +
                                 process->Log());
      }
    }
  }

 private:
  std::filesystem::path WriteConfig(int index) const {
    const std::filesystem::path path = dir_.path() / ("workflowd-" + std::to_string(index) + ".yaml");
    std::ofstream file(path);
    const char* queue = variant_.quorum ? " {type: quorum}\n" : " {}\n";
    file << "broker:\n  host: 127.0.0.1\n  port: " << port() << "\n  vhost: " << vhost_
         << "\n  prefetch: " << options_.prefetch << "\n  heartbeat: 30\n"
         << "workers: " << variant_.workers << "\nplugins_dir: "
         << (variant_.fan_out > 0 ? options_.fan_plugins_dir : options_.plugins_dir) << "\n"
         << "log_level: info\n"
         << "state:\n  path: " << (dir_.path() / "state.db").string()
         << "\n  message_log: " << (variant_.message_log ? "all" : "off") << "\n"
         << "queues:\n  " << kIn << ":" << queue << "  " << kMid << ":" << queue << "  " << kOut << ":" << queue;
    return path;
  }

  BrokerNode& broker_;
  const Options& options_;
  const Variant& variant_;
  Side side_;
  TempDir dir_;
  std::string vhost_;
  std::vector<std::string> incidents_;
  std::vector<std::unique_ptr<DaemonProcess>> consumers_;
  std::int64_t ready_ns_ = 0;
  std::vector<double> cpu_at_ready_;
  double broker_cpu_at_ready_ = 0;

  double BrokerCpu() const { return options_.broker_pid > 0 ? CpuSeconds(options_.broker_pid) : 0; }
};

// Waits until the collector has every message of its range, or none arrives for kStallTimeout.
void WaitForAll(const Collector& collector, std::uint64_t count) {
  std::uint64_t last_count = 0;
  auto last_progress = Clock::now();
  while (collector.arrived() < count) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::uint64_t now_count = collector.arrived();
    if (now_count != last_count) {
      last_count = now_count;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > kStallTimeout) {
      return;
    }
  }
}

// perf record attached to the consumers, when --perf-dir asks for it.
class Profiler {
 public:
  Profiler(const Options& options, RunContext& run, const std::string& label) {
    if (options.perf_dir.empty()) return;
    std::filesystem::create_directories(options.perf_dir);
    for (std::size_t i = 0; i < run.consumers().size(); ++i) {
      std::vector<std::string> args{"record"};
      for (const std::string& arg : Split(options.perf_args, ' ')) args.push_back(arg);
      const std::string file = options.perf_dir + "/" + label + "-" + std::to_string(i) + ".data";
      args.insert(args.end(), {"-p", std::to_string(run.consumers()[i]->pid()), "-o", file});
      recorders_.push_back(std::make_unique<DaemonProcess>("perf", args));
      std::cerr << "bench: perf recording into " << file << "\n";
    }
  }
  ~Profiler() { Stop(); }
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  void Stop() {
    for (auto& recorder : recorders_) {
      try {
        recorder->Signal(SIGINT);
        recorder->WaitExit(std::chrono::seconds(120));
      } catch (const std::exception& error) {
        std::cerr << "bench: perf: " << error.what() << "\n";
      }
    }
    recorders_.clear();
  }

 private:
  std::vector<std::unique_ptr<DaemonProcess>> recorders_;
};

Measurement RunOnce(BrokerNode& broker, const Options& options, const Variant& variant, Side side, int rep,
                    double latency_rate) {
  Measurement result;
  try {
    RunContext run(broker, options, variant, side);
    const std::uint64_t n = options.messages;
    Preload(run.port(), run.vhost(), kIn, 0, n, run.incidents());

    {
      Collector collector(run.port(), run.vhost(), kOut, 0, n);
      run.StartConsumers();
      Profiler profiler(options, run,
                        variant.name + "-" + (side == Side::kWorkflowd ? "workflowd" : "relay") + "-" +
                            std::to_string(rep));
      WaitForAll(collector, n);
      const double cpu = run.CpuSinceReady();
      const double broker_cpu = run.BrokerCpuSinceReady();
      profiler.Stop();
      collector.Stop();
      const std::uint64_t arrived = collector.arrived();
      result.lost = n - arrived;
      result.duplicates = collector.duplicates();
      if (arrived == n) {
        const double seconds = static_cast<double>(collector.done_ns() - run.ready_ns()) / 1e9;
        result.rate = static_cast<double>(n) / seconds;
        result.cpu_per_1k = cpu / static_cast<double>(n) * 1000.0;
        result.broker_cpu_per_1k = broker_cpu / static_cast<double>(n) * 1000.0;
      }
    }

    if (options.latency_seconds > 0 && result.lost == 0) {
      const double rate = latency_rate > 0 ? latency_rate : result.rate / 2;
      const auto count = static_cast<std::uint64_t>(std::max(1.0, rate * options.latency_seconds));
      Collector collector(run.port(), run.vhost(), kOut, n, count);
      Connection publisher(run.port(), run.vhost(), true);
      result.latency_rate = PublishPaced(publisher, kIn, n, count, rate, run.incidents());
      WaitForAll(collector, count);
      collector.Stop();
      std::vector<double> end_to_end, hops;
      end_to_end.reserve(count);
      hops.reserve(count);
      for (std::uint64_t seq = n; seq < n + count; ++seq) {
        if (collector.arrival(seq) == 0) continue;
        end_to_end.push_back(static_cast<double>(collector.arrival(seq) - collector.stamp(seq)) / 1e6);
        if (collector.hop(seq) >= 0) hops.push_back(static_cast<double>(collector.hop(seq)) / 1e6);
      }
      std::sort(end_to_end.begin(), end_to_end.end());
      std::sort(hops.begin(), hops.end());
      result.lost += count - end_to_end.size();
      result.duplicates += collector.duplicates();
      if (hops.size() != end_to_end.size()) {
        throw std::runtime_error(std::to_string(end_to_end.size() - hops.size()) +
                                 " message(s) arrived without both hop stamps");
      }
      result.has_latency = !hops.empty();
      result.hop_p50 = Percentile(hops, 50);
      result.hop_p99 = Percentile(hops, 99);
      result.hop_p999 = Percentile(hops, 99.9);
      result.end_to_end_p99 = Percentile(end_to_end, 99);
    }

    result.rss_mb = run.PeakRssMb();
    run.StopConsumers();
    result.ok = result.lost == 0;
    if (!result.ok) result.error = std::to_string(result.lost) + " message(s) lost";
  } catch (const std::exception& error) {
    result.ok = false;
    result.error = error.what();
  }
  return result;
}

std::string Fixed(double value, int decimals) {
  if (std::isnan(value)) return "n/a";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// 12345.6 -> "12,346"
std::string Thousands(double value) {
  if (std::isnan(value)) return "n/a";
  std::string digits = std::to_string(static_cast<long long>(std::llround(value)));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

std::string ReadFirstMatch(const std::string& path, const std::string& prefix) {
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    if (line.starts_with(prefix)) return Trim(line.substr(line.find(':') + 1));
  }
  return "unknown";
}

std::string MachineLine(BrokerNode& broker) {
  utsname name{};
  uname(&name);
  std::string version = "unknown";
  try {
    version = Trim(broker.Ctl({"version"}));
  } catch (const std::exception&) {
  }
  return "nproc " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + ", " +
         ReadFirstMatch("/proc/cpuinfo", "model name") + ", Linux " + name.release + ", RabbitMQ " + version +
         " (private node on loopback, same host)";
}

void PrintProgress(const Variant& variant, Side side, int rep, const Measurement& m) {
  std::fprintf(stderr, "bench: [%d] %-9s %-10s ", rep, variant.name.c_str(), Name(side));
  if (!m.ok && m.rate == 0) {
    std::fprintf(stderr, "FAILED: %s\n", m.error.c_str());
    return;
  }
  std::fprintf(stderr, "%8.0f msg/s  cpu %.3f s/1k  broker cpu %.3f s/1k  rss %.1f MB  lost %llu  dup %llu",
               m.rate, m.cpu_per_1k, m.broker_cpu_per_1k, m.rss_mb, static_cast<unsigned long long>(m.lost), static_cast<unsigned long long>(m.duplicates));
  if (m.has_latency) {
    std::fprintf(stderr, "  at %.0f/s: hop p50 %.2f p99 %.2f p99.9 %.2f ms, end to end p99 %.2f ms",
                 m.latency_rate, m.hop_p50, m.hop_p99, m.hop_p999, m.end_to_end_p99);
  }
  if (!m.ok) std::fprintf(stderr, "  (%s)", m.error.c_str());
  std::fprintf(stderr, "\n");
}

int RunThroughput(BrokerNode& broker, const Options& options, const std::vector<const Variant*>& variants) {
  const double load_before = LoadAverage();
  struct Results {
    std::vector<Measurement> workflowd, relay;
  };
  std::vector<Results> results(variants.size());
  for (int rep = 1; rep <= options.repeat; ++rep) {
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const Variant& variant = *variants[v];
      Measurement daemon = RunOnce(broker, options, variant, Side::kWorkflowd, rep, options.latency_rate);
      PrintProgress(variant, Side::kWorkflowd, rep, daemon);
      // The relay is paced at the same rate as workflowd, so the latencies compare.
      double rate = options.latency_rate > 0 ? options.latency_rate : daemon.rate / 2;
      if (rate <= 0) rate = 1000;
      Measurement relay = RunOnce(broker, options, variant, Side::kRelay, rep, rate);
      PrintProgress(variant, Side::kRelay, rep, relay);
      results[v].workflowd.push_back(daemon);
      results[v].relay.push_back(relay);
    }
  }

  std::ostringstream table;
  table << "### workflowd vs a bare rabbitmq-c relay\n\n"
        << "Machine: " << MachineLine(broker) << "; load average " << Fixed(load_before, 1) << " before, "
        << Fixed(LoadAverage(), 1) << " after  \n"
        << "Command: `" << options.command << "`  \n"
        << "Shape: pipeline_in -> relay_in -> pipeline_mid -> relay_mid -> pipeline_out; durable queues, "
        << "persistent messages, publisher confirms, ack after confirm, prefetch " << options.prefetch << ". "
        << options.messages << " preloaded messages per run; median of " << options.repeat
        << " runs per row, workflowd and the relay interleaved; ratios are medians of the per-repetition "
        << "ratios. Latency at the paced rate shown (half of workflowd's throughput), "
        << options.latency_seconds << " s: hop = handler to handler, from relay_in's send to relay_mid's "
        << "start (one queue hop, stamped by the stages); end to end = publish -> arrival at pipeline_out "
        << "(3 queue hops, 2 handlers). Variant fan: "
        << "pipeline_in -> fan_out (sends " << kFanOut << " parts) -> pipeline_mid -> fan_in (sends on once "
        << "all parts arrived) -> pipeline_out; msgs/s and CPU count input messages; its hop runs from fan_out's "
        << "send to fan_in's start on the last part.\n\n"
        << "| variant | program | msgs/s | x relay | CPU s/1k msgs | x relay | broker CPU s/1k | peak RSS MB | "
           "lost | latency rate/s | hop p50 ms | hop p99 ms | hop p99.9 ms | end to end p99 ms |\n"
        << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  int failures = 0;
  for (std::size_t v = 0; v < variants.size(); ++v) {
    const Variant& variant = *variants[v];
    for (Side side : {Side::kWorkflowd, Side::kRelay}) {
      const auto& runs = side == Side::kWorkflowd ? results[v].workflowd : results[v].relay;
      std::vector<double> rate, cpu, broker_cpu, rss, lat_rate, p50, p99, p999, end_to_end_p99, rate_ratio,
          cpu_ratio;
      std::uint64_t lost = 0;
      int failed = 0;
      for (std::size_t r = 0; r < runs.size(); ++r) {
        const Measurement& m = runs[r];
        lost += m.lost;
        if (!m.ok) ++failed;
        if (m.rate > 0) {
          rate.push_back(m.rate);
          cpu.push_back(m.cpu_per_1k);
          broker_cpu.push_back(m.broker_cpu_per_1k);
          rss.push_back(m.rss_mb);
        }
        if (m.has_latency) {
          lat_rate.push_back(m.latency_rate);
          p50.push_back(m.hop_p50);
          p99.push_back(m.hop_p99);
          p999.push_back(m.hop_p999);
          end_to_end_p99.push_back(m.end_to_end_p99);
        }
        const Measurement& d = results[v].workflowd[r];
        const Measurement& b = results[v].relay[r];
        if (side == Side::kWorkflowd && d.rate > 0 && b.rate > 0) {
          rate_ratio.push_back(d.rate / b.rate);
          if (b.cpu_per_1k > 0) cpu_ratio.push_back(d.cpu_per_1k / b.cpu_per_1k);
        }
      }
      failures += failed;
      const bool daemon = side == Side::kWorkflowd;
      table << "| " << (daemon ? variant.name + " (" + variant.description + ")" : std::string("")) << " | "
            << Name(side) << (failed > 0 ? " (" + std::to_string(failed) + " failed)" : "") << " | "
            << Thousands(Median(rate)) << " | " << (daemon ? Fixed(Median(rate_ratio), 2) : "1") << " | "
            << Fixed(Median(cpu), 3) << " | " << (daemon ? Fixed(Median(cpu_ratio), 2) : "1") << " | "
            << Fixed(Median(broker_cpu), 3) << " | " << Fixed(Median(rss), 1) << " | " << lost << " | " << Thousands(Median(lat_rate)) << " | "
            << Fixed(Median(p50), 2) << " | " << Fixed(Median(p99), 2) << " | " << Fixed(Median(p999), 2) << " | "
            << Fixed(Median(end_to_end_p99), 2) << " |\n";
    }
  }
  std::cout << "\n" << table.str() << std::flush;
  return failures == 0 ? 0 : 1;
}

int RunBacklog(BrokerNode& broker, const Options& options) {
  const Variant& variant = AllVariants().front();
  struct Row {
    Side side;
    double preload_rate = 0;
    double seconds = 0;
    std::uint64_t processed = 0;
    double peak_mb = 0;
    double end_mb = 0;
    double cpu_per_1k = 0;
    std::string trace;
    std::string error;
  };
  std::vector<Row> rows;
  for (Side side : {Side::kWorkflowd, Side::kRelay}) {
    Row row{side};
    try {
      RunContext run(broker, options, variant, side);
      std::cerr << "bench: backlog: preloading " << options.backlog << " messages for " << Name(side) << "\n";
      const auto start = Clock::now();
      Preload(run.port(), run.vhost(), kIn, 0, options.backlog, run.incidents());
      row.preload_rate = static_cast<double>(options.backlog) /
                         std::chrono::duration<double>(Clock::now() - start).count();
      std::cerr << "bench: backlog: preloaded at " << Thousands(row.preload_rate) << " msg/s\n";
      Collector collector(run.port(), run.vhost(), kOut, 0, options.backlog);
      run.StartConsumers();
      const std::int64_t begin = NowNs();
      const pid_t pid = run.consumers().front()->pid();
      std::uint64_t peak = 0;
      std::ostringstream trace;
      const int seconds = std::max(1, static_cast<int>(options.backlog_seconds));
      const int trace_every = std::max(5, (seconds + 11) / 12 / 5 * 5);  // about a dozen points
      for (int second = 1; second <= seconds; ++second) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const Memory memory = ReadMemory(pid);
        peak = std::max(peak, memory.peak);
        if (second % trace_every == 0) {
          trace << (trace.tellp() > 0 ? ", " : "") << second << "s " << Fixed(static_cast<double>(memory.current) / 1048576.0, 1);
          std::cerr << "bench: backlog: " << Name(side) << " " << second << " s: " << collector.arrived()
                    << " through, RSS " << Fixed(static_cast<double>(memory.current) / 1048576.0, 1) << " MB, peak "
                    << Fixed(static_cast<double>(memory.peak) / 1048576.0, 1) << " MB\n";
        }
        if (collector.arrived() == options.backlog) break;
      }
      row.seconds = static_cast<double>(NowNs() - begin) / 1e9;
      row.processed = collector.arrived();
      row.cpu_per_1k = row.processed > 0 ? run.CpuSinceReady() / static_cast<double>(row.processed) * 1000 : 0;
      const Memory memory = ReadMemory(pid);
      row.peak_mb = static_cast<double>(std::max(peak, memory.peak)) / 1048576.0;
      row.end_mb = static_cast<double>(memory.current) / 1048576.0;
      row.trace = trace.str();
      run.StopConsumers();
      collector.Stop();
    } catch (const std::exception& error) {
      row.error = error.what();
      std::cerr << "bench: backlog: " << Name(side) << " FAILED: " << row.error << "\n";
    }
    rows.push_back(row);
  }

  std::ostringstream table;
  table << "### Memory with a backlog in the broker\n\n"
        << "Machine: " << MachineLine(broker) << "  \n"
        << "Command: `" << options.command << "`  \n"
        << options.backlog << " messages preloaded into pipeline_in, then the consumer runs for up to "
        << options.backlog_seconds << " s (" << variant.description << ", prefetch " << options.prefetch
        << "); RSS sampled every second.\n\n"
        << "| program | backlog | ran s | moved end to end | msgs/s | CPU s/1k msgs | peak RSS MB | RSS MB over time |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---|\n";
  int failures = 0;
  for (const Row& row : rows) {
    if (!row.error.empty()) {
      ++failures;
      table << "| " << Name(row.side) << " | " << Thousands(static_cast<double>(options.backlog))
            << " | failed | | | | | |\n";
      continue;
    }
    table << "| " << Name(row.side) << " | " << Thousands(static_cast<double>(options.backlog)) << " | "
          << Fixed(row.seconds, 0) << " | " << Thousands(static_cast<double>(row.processed)) << " | "
          << Thousands(static_cast<double>(row.processed) / row.seconds) << " | " << Fixed(row.cpu_per_1k, 3)
          << " | " << Fixed(row.peak_mb, 1) << " | " << row.trace << " |\n";
  }
  std::cout << "\n" << table.str() << std::flush;
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string variants;
  po::options_description description(
      "workflowd_bench: workflowd against a bare rabbitmq-c relay on a private RabbitMQ node");
  description.add_options()
      ("help,h", "show this help and exit")
      ("messages,n", po::value(&options.messages)->default_value(options.messages), "messages per throughput run")
      ("repeat,r", po::value(&options.repeat)->default_value(options.repeat), "runs per variant and program")
      ("variants", po::value(&variants)->default_value("base,log-off,w1,w2,quorum,2-daemons,fan"),
       "comma-separated: base, log-off, w1, w2, quorum, 2-daemons")
      ("latency-seconds", po::value(&options.latency_seconds)->default_value(options.latency_seconds),
       "paced publishing for the latency figures; 0 skips them")
      ("latency-rate", po::value(&options.latency_rate)->default_value(0),
       "paced rate in messages/s; 0 = half of workflowd's throughput in the same repetition")
      ("prefetch", po::value(&options.prefetch)->default_value(options.prefetch), "prefetch of both programs")
      ("incidents", po::value(&options.incidents)->default_value(options.incidents), "incidents the messages spread over")
      ("backlog", po::value(&options.backlog)->default_value(0),
       "instead: preload this many messages and measure peak RSS while they drain")
      ("backlog-seconds", po::value(&options.backlog_seconds)->default_value(options.backlog_seconds),
       "how long each program runs on the backlog")
      ("perf-dir", po::value(&options.perf_dir), "perf record each consumer during its throughput run into this "
       "directory (the profiled runs' numbers are disturbed)")
      ("perf-args", po::value(&options.perf_args)->default_value(options.perf_args), "perf record options")
      ("workflowd", po::value(&options.workflowd)->default_value(options.workflowd), "workflowd binary")
      ("relay", po::value(&options.relay)->default_value(options.relay), "bare_relay binary")
      ("plugins-dir", po::value(&options.plugins_dir)->default_value(options.plugins_dir),
       "folder with the pipeline plugin")
      ("fan-plugins-dir", po::value(&options.fan_plugins_dir)->default_value(options.fan_plugins_dir),
       "folder with the fan-out/fan-in plugin")
      ("relay-args", po::value(&options.relay_args),
       "extra bare_relay options, to make it behave like workflowd on the wire one difference at a time: "
       "--ack-mode single, --properties workflowd, --pad BYTES");
  po::variables_map arguments;
  try {
    po::store(po::parse_command_line(argc, argv, description), arguments);
    po::notify(arguments);
  } catch (const po::error& error) {
    std::cerr << "workflowd_bench: " << error.what() << "; see --help\n";
    return 2;
  }
  if (arguments.count("help") != 0) {
    std::cout << description;
    return 0;
  }
  if (options.messages == 0 || options.repeat < 1) {
    std::cerr << "workflowd_bench: --messages and --repeat must be positive\n";
    return 2;
  }
  std::vector<const Variant*> selected;
  for (const std::string& name : Split(variants, ',')) {
    auto found = std::find_if(AllVariants().begin(), AllVariants().end(),
                              [&](const Variant& v) { return v.name == name; });
    if (found == AllVariants().end()) {
      std::cerr << "workflowd_bench: unknown variant '" << name << "'\n";
      return 2;
    }
    selected.push_back(&*found);
  }
  if (const char* command = std::getenv("WORKFLOW_BENCH_COMMAND"); command != nullptr && *command != '\0') {
    options.command = command;
  } else {
    for (int i = 0; i < argc; ++i) options.command += (i == 0 ? "" : " ") + std::string(argv[i]);
  }
  std::signal(SIGPIPE, SIG_IGN);

  try {
    BrokerNode broker;
    std::cerr << "bench: starting a private RabbitMQ node\n";
    broker.Start();
    options.broker_pid = FindBrokerPid(broker.node_name());
    if (options.broker_pid < 0) std::cerr << "bench: broker process not found; its CPU is not reported\n";
    std::cerr << "bench: broker on 127.0.0.1:" << broker.amqp_port() << "\n";
    return options.backlog > 0 ? RunBacklog(broker, options) : RunThroughput(broker, options, selected);
  } catch (const std::exception& error) {
    std::cerr << "workflowd_bench: " << error.what() << "\n";
    return 1;
  }
}
