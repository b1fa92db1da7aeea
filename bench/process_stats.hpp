#pragma once

// What the benchmark reads about a running process from /proc: CPU time and peak memory.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace workflowd::bench {

// User + system CPU seconds of every thread of pid so far: its CPU clock (clock_getcpuclockid),
// else utime + stime of /proc/<pid>/stat. Throws std::runtime_error when the process is gone.
double CpuSeconds(pid_t pid);

// Peak resident set size (VmHWM) and the current one (VmRSS) in bytes, from /proc/<pid>/status.
struct Memory {
  std::uint64_t peak = 0;
  std::uint64_t current = 0;
};
Memory ReadMemory(pid_t pid);

// The Erlang VM (beam.smp) of the RabbitMQ node named node_name, or -1.
pid_t FindBrokerPid(const std::string& node_name);

// The 1-minute load average, from /proc/loadavg.
double LoadAverage();

}  // namespace workflowd::bench
