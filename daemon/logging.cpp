#include "logging.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <memory>
#include <string_view>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "journal_sink.hpp"

namespace workflowd {
namespace {

constexpr const char* kName = "workflowd";

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarning: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

bool IsJournalStream(const char* journal_stream, int fd) {
  if (journal_stream == nullptr) return false;
  const std::string_view text(journal_stream);
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  const auto parse = [](std::string_view digits, std::uint64_t& out) {
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return error == std::errc() && end == digits.data() + digits.size() && !digits.empty();
  };
  if (!parse(text.substr(0, colon), device) || !parse(text.substr(colon + 1), inode)) return false;
  struct stat status;
  if (fstat(fd, &status) != 0) return false;
  return status.st_dev == device && status.st_ino == inode;
}

void SetUpLogging(LogLevel level) {
  std::shared_ptr<spdlog::logger> logger;
  if (IsJournalStream(std::getenv("JOURNAL_STREAM"), STDERR_FILENO)) {
    // The journal stamps the time, the process and the priority itself.
    logger = std::make_shared<spdlog::logger>(kName, std::make_shared<JournalSink>(kName));
  } else {
    logger = spdlog::stderr_logger_mt(kName);
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%t] %v");
  }
  // Errors must reach the file or journal even if the process dies right after.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  SetLogLevel(level);
}

void SetLogLevel(LogLevel level) { spdlog::set_level(ToSpdlog(level)); }

}  // namespace workflowd
