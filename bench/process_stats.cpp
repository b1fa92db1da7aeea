#include "process_stats.hpp"

#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

namespace workflowd::bench {

double CpuSeconds(pid_t pid) {
  // The process's CPU clock: nanoseconds, all threads, those that ended included. /proc's
  // utime + stime count in clock ticks (10 ms), too coarse for a relay that spends ~10 us per
  // message; they are the fallback.
  clockid_t clock;
  timespec time{};
  if (clock_getcpuclockid(pid, &clock) == 0 && clock_gettime(clock, &time) == 0) {
    return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_nsec) / 1e9;
  }
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(file, line)) throw std::runtime_error("process " + std::to_string(pid) + " is gone");
  // The command name, in parentheses, may hold spaces: the fields that follow start after it.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  // Fields 3..13 (state .. cmajflt), then 14 utime and 15 stime, in clock ticks.
  for (int i = 3; i <= 13; ++i) fields >> field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

Memory ReadMemory(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  Memory memory;
  std::string line;
  while (std::getline(file, line)) {
    // "VmHWM:\t   12345 kB"
    if (line.starts_with("VmHWM:")) memory.peak = std::stoull(line.substr(6)) * 1024;
    if (line.starts_with("VmRSS:")) memory.current = std::stoull(line.substr(6)) * 1024;
  }
  return memory;
}

pid_t FindBrokerPid(const std::string& node_name) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream file(entry.path() / "environ");
    std::string env((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // The node is started with RABBITMQ_NODENAME in its environment; rabbitmqctl is not.
    const std::string variable = "RABBITMQ_NODENAME=" + node_name + std::string(1, '\0');
    if (env.starts_with(variable) || env.find(std::string(1, '\0') + variable) != std::string::npos) {
      std::ifstream comm(entry.path() / "comm");
      std::string command;
      std::getline(comm, command);
      if (command.starts_with("beam")) return static_cast<pid_t>(std::stoi(name));
    }
  }
  return -1;
}

double LoadAverage() {
  std::ifstream file("/proc/loadavg");
  double load = 0;
  file >> load;
  return load;
}

}  // namespace workflowd::bench
