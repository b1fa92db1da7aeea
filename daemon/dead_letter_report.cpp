#include "dead_letter_report.hpp"

#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include "dead_letter_queue.hpp"
#include "display_text.hpp"
#include "sqlite_state_store.hpp"
#include "usage_error.hpp"

namespace po = boost::program_options;

namespace workflowd {
namespace {

// What a table row shows of a reason and of a body.
constexpr std::size_t kReasonChars = 100;
constexpr std::size_t kBodyChars = 60;

std::string DeadLetterQueue(const Settings& settings, const po::variables_map& arguments) {
  return arguments.count("queue") != 0 ? arguments["queue"].as<std::string>() : settings.dead_letter_queue;
}

void PrintDeadLetters(const std::vector<DeadLetter>& letters, const std::string& queue, std::size_t limit,
                      std::ostream& out) {
  if (letters.empty()) {
    out << "no dead letters in queue " << CellText(queue) << "\n";
    return;
  }
  Table table({"MESSAGE ID", "QUEUE", "DEAD-LETTERED", "REASON", "BODY"});
  for (const DeadLetter& letter : letters) {
    std::string body = Excerpt(letter.body, kBodyChars);
    // A body cut short by the listing's read ends in "…" too, even when the excerpt fits.
    if (letter.body.size() < letter.body_size && !body.ends_with("…")) body += "…";
    table.Add({letter.message_id, letter.queue,
               letter.dead_lettered_at_ms ? FormatUtcSeconds(*letter.dead_lettered_at_ms) : "",
               Excerpt(letter.reason, kReasonChars), body});
  }
  table.Print(out);
  out << letters.size() << " dead letter(s) in queue " << CellText(queue);
  if (letters.size() == limit) out << " shown; there may be more (--limit)";
  out << "\n";
}

// A message the crash-loop guard dead-lettered keeps its count of crashed deliveries; the copy
// sent back starts from zero, with max_deliveries tries of its own. Cleared before the copy is
// published, since a copy that crashes workflowd at once must not meet the old count; a failure
// here is a warning, and a resend that fails after it leaves the dead letter where it was.
void ForgetCrashCount(const Settings& settings, const DeadLetter& letter) {
  if (letter.crash_count_key.empty()) return;
  const std::filesystem::path& path = settings.state.path;
  std::string failure;
  try {
    // A missing file is not created: the daemon's store is elsewhere.
    if (std::filesystem::exists(path)) {
      OpenSqliteStateStore(path)->ForgetUnfinishedDeliveries(letter.queue, letter.crash_count_key);
      return;
    }
    failure = "there is no state store at " + path.string();
  } catch (const std::exception& error) {
    failure = error.what();
  }
  std::cerr << "warning: cannot clear the message's count of crashed deliveries (" << failure
            << "): if the broker delivers the copy again within a day (after a crash, a reconnect or a retry), "
               "it is dead-lettered then\n";
}

}  // namespace

void AddDeadLetterOptions(po::options_description& options) {
  options.add_options()("queue", po::value<std::string>(), "the dead-letter queue (default: the config's dead_letter_queue)")
      ("limit", po::value<int>()->default_value(100), "list at most this many");
}

int DeadLetters(const Settings& settings, const po::variables_map& arguments) {
  const std::string queue = DeadLetterQueue(settings, arguments);
  const bool resend = arguments.count("target") != 0;
  if (resend && arguments["target"].as<std::string>() != "resend") {
    throw UsageError("unknown action '" + arguments["target"].as<std::string>() +
                     "'; use 'workflowctl dead-letters' to list, 'workflowctl dead-letters resend MESSAGE_ID' to "
                     "send one back");
  }
  if (!resend) {
    const int limit = arguments["limit"].as<int>();
    if (limit < 1) throw UsageError("--limit must be at least 1");
    AmqpConnection connection(settings.broker);
    const std::vector<DeadLetter> letters = BrowseDeadLetters(connection, queue, static_cast<std::size_t>(limit));
    connection.Close();
    PrintDeadLetters(letters, queue, static_cast<std::size_t>(limit), std::cout);
    return 0;
  }
  if (arguments.count("argument") == 0) throw UsageError("resend: MESSAGE_ID is required");
  const std::string message_id = arguments["argument"].as<std::string>();
  // A dead letter that nothing names lists its id as "-", and cannot be resent by it.
  if (message_id.empty()) throw UsageError("resend: MESSAGE_ID is empty");
  AmqpConnection connection(settings.broker);
  const DeadLetter letter =
      ResendDeadLetter(connection, queue, message_id, settings.broker.connect_timeout,
                       [&](const DeadLetter& found) { ForgetCrashCount(settings, found); });
  connection.Close();
  std::cout << "sent message " << CellText(message_id) << " back to queue " << CellText(letter.queue) << "\n";
  return 0;
}

}  // namespace workflowd
