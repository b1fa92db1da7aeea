#include "sqlite_state_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace workflowd {
namespace {

namespace fs = std::filesystem;

// The schema as the ordered history of its changes: step i takes a file from user_version i to
// i + 1. A released step never changes; a schema change is a new step at the end.
//
// No table references incidents: messages of an unknown incident are logged (NOT_PROCESSED), and
// the health pseudo-incident keeps records and leases without having a row.
const char* const kMigrations[] = {
    // 1: incidents and the message log.
    R"sql(
      CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        status TEXT NOT NULL,
        originator TEXT NOT NULL DEFAULT '',
        destination TEXT NOT NULL DEFAULT '',
        src_tag TEXT NOT NULL DEFAULT '',
        dest_tag TEXT NOT NULL DEFAULT '',
        body_prefix TEXT NOT NULL DEFAULT '',
        consumer TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        sent_at INTEGER,
        processing_at INTEGER,
        finished_at INTEGER
      );
    )sql",
    // 2: persisted handler records, leases of atomic handlers, and the indexes the queries need.
    R"sql(
      CREATE TABLE persisted (
        seq INTEGER PRIMARY KEY,  -- the order of insertion
        incident_id TEXT NOT NULL,
        handler TEXT NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX persisted_by_incident_handler ON persisted (incident_id, handler);
      CREATE TABLE leases (
        incident_id TEXT NOT NULL,
        handler TEXT NOT NULL,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (incident_id, handler)
      );
      CREATE INDEX incidents_by_created_at ON incidents (created_at);
      CREATE INDEX messages_by_incident_status ON messages (incident_id, status);
    )sql",
    // 3: the crash-loop guard's counts of deliveries whose handler has not finished.
    R"sql(
      CREATE TABLE unfinished_deliveries (
        queue TEXT NOT NULL,
        message_key TEXT NOT NULL,
        deliveries INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (queue, message_key)
      ) WITHOUT ROWID;
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An open connection and the file it names in every error.
class Database {
 public:
  explicit Database(const fs::path& path) : path_(path.string()) {
    const int rc = sqlite3_open_v2(path_.c_str(), &db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw StateStoreError("state store " + path_ + ": cannot open: " + detail);
    }
  }
  Database(Database&& other) noexcept : path_(std::move(other.path_)), db_(std::exchange(other.db_, nullptr)) {}
  Database& operator=(const Database&) = delete;
  ~Database() { sqlite3_close_v2(db_); }

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void Fail(std::string_view operation) const {
    throw StateStoreError("state store " + path_ + ": cannot " + std::string(operation) + ": " +
                          sqlite3_errmsg(db_));
  }
  void Check(int rc, std::string_view operation) const {
    if (rc != SQLITE_OK) Fail(operation);
  }
  // Execute and QueryText are for the schema and the connection's settings: SQL with no values.
  void Execute(const char* sql, std::string_view operation) const {
    Check(sqlite3_exec(db_, sql, nullptr, nullptr, nullptr), operation);
  }
  // The first column of the first row, such as a PRAGMA's value; empty when there is no row.
  std::string QueryText(const char* sql, std::string_view operation) const {
    sqlite3_stmt* raw = nullptr;
    Check(sqlite3_prepare_v2(db_, sql, -1, &raw, nullptr), operation);
    const std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> statement(raw, &sqlite3_finalize);
    const int rc = sqlite3_step(raw);
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) Fail(operation);
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    return text != nullptr ? text : "";
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(const Database& db, std::string_view sql) : db_(db) {
    db.Check(sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                &statement_, nullptr),
             "prepare a statement");
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(statement_); }

  sqlite3_stmt* get() const { return statement_; }
  const Database& db() const { return db_; }

 private:
  const Database& db_;
  sqlite3_stmt* statement_ = nullptr;
};

// One execution of a prepared statement: binds ?1, ?2, ... to the arguments in order, steps
// through the result rows, and resets the statement for its next use when it goes.
class Run {
 public:
  template <class... Args>
  Run(Statement& statement, std::string_view operation, const Args&... args)
      : statement_(statement), operation_(operation) {
    int index = 0;
    (Bind(++index, args), ...);
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() {
    sqlite3_reset(statement_.get());
    sqlite3_clear_bindings(statement_.get());
  }

  // True when a row is ready to read, false when the statement is done.
  bool Next() {
    const int rc = sqlite3_step(statement_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    statement_.db().Fail(operation_);
  }
  // Rows inserted, updated or deleted by the statement that just finished.
  int Changes() const { return sqlite3_changes(statement_.db().get()); }

  std::string Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_.get(), column));
    if (text == nullptr) return {};
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(statement_.get(), column)));
  }
  std::int64_t Int(int column) const { return sqlite3_column_int64(statement_.get(), column); }
  std::optional<std::int64_t> OptionalInt(int column) const {
    if (sqlite3_column_type(statement_.get(), column) == SQLITE_NULL) return std::nullopt;
    return Int(column);
  }

 private:
  void Bind(int index, std::string_view value) {
    // A null pointer would bind NULL; an empty string_view may have one.
    const char* text = value.data() != nullptr ? value.data() : "";
    Check(sqlite3_bind_text64(statement_.get(), index, text, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void Bind(int index, std::int64_t value) { Check(sqlite3_bind_int64(statement_.get(), index, value)); }
  template <class T>
  void Bind(int index, const std::optional<T>& value) {
    if (value) {
      Bind(index, *value);
    } else {
      Check(sqlite3_bind_null(statement_.get(), index));
    }
  }
  void Check(int rc) const { statement_.db().Check(rc, operation_); }

  Statement& statement_;
  std::string_view operation_;
};

// A write transaction that rolls back unless committed. IMMEDIATE takes the write lock at BEGIN,
// where the busy timeout lets it wait for another process, so no statement inside fails halfway
// for want of the lock.
class Transaction {
 public:
  Transaction(Statement& begin, Statement& commit, Statement& rollback, std::string_view operation)
      : commit_(commit), rollback_(rollback), operation_(operation) {
    Run(begin, operation).Next();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // A failed statement may have ended the transaction already.
    if (!committed_ && sqlite3_get_autocommit(commit_.db().get()) == 0) {
      sqlite3_step(rollback_.get());
      sqlite3_reset(rollback_.get());
    }
  }

  void Commit() {
    Run(commit_, operation_).Next();
    committed_ = true;
  }

 private:
  Statement& commit_;
  Statement& rollback_;
  std::string_view operation_;
  bool committed_ = false;
};

void Configure(const Database& db) {
  // Several daemons may share the file: a writer waits for another's commit instead of failing.
  db.Check(sqlite3_busy_timeout(db.get(), 5000), "set the busy timeout");
  const std::string mode = db.QueryText("PRAGMA journal_mode = WAL", "switch to WAL journal mode");
  if (mode != "wal") {
    throw StateStoreError("state store " + db.path() + ": cannot switch to WAL journal mode (it stays '" + mode +
                          "'); put the file on a local filesystem");
  }
  // In WAL mode NORMAL loses no integrity on a crash, only the last commits on a power loss.
  db.Execute("PRAGMA synchronous = NORMAL", "set synchronous mode");
  db.Execute("PRAGMA foreign_keys = ON", "enable foreign keys");  // for the references a later step adds
}

int SchemaVersion(const Database& db) {
  return std::stoi(db.QueryText("PRAGMA user_version", "read the schema version"));
}

// Applies the missing steps, each in its own transaction. The version is read under the write
// lock, so processes opening an old file at the same time apply each step once.
void Migrate(const Database& db) {
  for (;;) {
    db.Execute("BEGIN IMMEDIATE", "start a schema migration");
    try {
      const int version = SchemaVersion(db);
      if (version > kSchemaVersion) {
        throw StateStoreError("state store " + db.path() + ": its schema version " + std::to_string(version) +
                              " is newer than this workflowd knows (" + std::to_string(kSchemaVersion) +
                              "); upgrade workflowd to the release that wrote it");
      }
      if (version == kSchemaVersion) {
        db.Execute("COMMIT", "finish the schema check");
        return;
      }
      const std::string step = "migrate the schema to version " + std::to_string(version + 1);
      db.Execute(kMigrations[version], step);
      // A PRAGMA takes no bound parameters; the number is the step's, not an input.
      db.Execute(("PRAGMA user_version = " + std::to_string(version + 1)).c_str(), step);
      db.Execute("COMMIT", step);
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
}

// One connection, used by one thread at a time: every call holds mutex_ throughout, since a
// statement's bindings and reset, sqlite3_changes and sqlite3_errmsg all belong to the connection.
class SqliteStateStore final : public StateStore {
 public:
  // db is configured and migrated: the statements below are prepared against its tables.
  // version_db is a second connection to the same file, for ChangeVersion.
  SqliteStateStore(Database db, Database version_db) : db_(std::move(db)), version_db_(std::move(version_db)) {}

  Incident CreateIncident(std::string_view kind, std::string_view name, std::string_view comment) override {
    const std::lock_guard lock(mutex_);
    Incident incident;
    incident.id = boost::uuids::to_string(uuid_generator_());
    incident.kind = kind;
    incident.name = name;
    incident.comment = comment;
    incident.created_at = incident.updated_at = NowMs();
    Run(insert_incident_, "create an incident", incident.id, kind, name, ToString(incident.status), comment,
        incident.created_at)
        .Next();
    return incident;
  }

  std::optional<Incident> FindIncident(std::string_view id) override {
    const std::lock_guard lock(mutex_);
    Run run(select_incident_, "find an incident", id);
    if (!run.Next()) return std::nullopt;
    return ReadIncident(run);
  }

  bool TransitionIncident(std::string_view id, IncidentStatus to, std::string_view comment) override {
    const std::lock_guard lock(mutex_);
    Run run(transition_incident_, "change an incident's status", id, ToString(to), comment, NowMs());
    run.Next();
    return run.Changes() == 1;
  }

  std::vector<Incident> ListIncidents(const IncidentFilter& filter) override {
    const std::lock_guard lock(mutex_);
    std::optional<std::string_view> status;
    if (filter.status) status = ToString(*filter.status);
    const auto limit = static_cast<std::int64_t>(
        std::min<std::size_t>(filter.limit, std::numeric_limits<std::int64_t>::max()));
    Run run(list_incidents_, "list incidents", status, filter.kind, limit);
    std::vector<Incident> incidents;
    while (run.Next()) incidents.push_back(ReadIncident(run));
    return incidents;
  }

  void RecordMessages(std::span<const MessageEvent> events) override {
    if (events.empty()) return;
    // A message's SENT, PROCESSING and COMPLETE often arrive in one batch: one write each.
    const std::vector<MessageRecord> rows = FoldMessageEvents(events);
    const std::lock_guard lock(mutex_);
    constexpr std::string_view kOperation = "record messages";
    Transaction transaction(begin_, commit_, rollback_, kOperation);
    for (const MessageRecord& row : rows) {
      Run(upsert_message_, kOperation, row.message_id, row.incident_id, ToString(row.status), row.originator,
          row.destination, row.src_tag, row.dest_tag, row.body_prefix, row.consumer, row.comment, row.sent_at,
          row.processing_at, row.finished_at)
          .Next();
    }
    transaction.Commit();
  }

  std::vector<MessageRecord> MessageLog(std::string_view incident_id) override {
    const std::lock_guard lock(mutex_);
    Run run(select_message_log_, "read the message log", incident_id);
    std::vector<MessageRecord> log;
    while (run.Next()) {
      MessageRecord& record = log.emplace_back();
      record.message_id = run.Text(0);
      record.incident_id = run.Text(1);
      record.status = ParseMessageStatus(run.Text(2), record.message_id);
      record.originator = run.Text(3);
      record.destination = run.Text(4);
      record.src_tag = run.Text(5);
      record.dest_tag = run.Text(6);
      record.body_prefix = run.Text(7);
      record.consumer = run.Text(8);
      record.comment = run.Text(9);
      record.sent_at = run.OptionalInt(10);
      record.processing_at = run.OptionalInt(11);
      record.finished_at = run.OptionalInt(12);
    }
    return log;
  }

  std::size_t CountInFlight(std::string_view incident_id) override {
    const std::lock_guard lock(mutex_);
    Run run(count_in_flight_, "count messages in flight", incident_id);
    run.Next();
    return static_cast<std::size_t>(run.Int(0));
  }

  void PersistPut(std::string_view incident_id, std::string_view handler, std::string_view json) override {
    const std::lock_guard lock(mutex_);
    Run(insert_persisted_, "persist a record", incident_id, handler, json).Next();
  }

  std::vector<std::string> PersistGet(std::string_view incident_id, std::string_view handler) override {
    const std::lock_guard lock(mutex_);
    return Column(Run(select_persisted_, "read persisted records", incident_id, handler));
  }

  std::vector<std::string> PersistGetAll(std::string_view incident_id) override {
    const std::lock_guard lock(mutex_);
    return Column(Run(select_all_persisted_, "read persisted records", incident_id));
  }

  bool TryAcquireLease(std::string_view incident_id, std::string_view handler, std::string_view owner,
                       std::chrono::milliseconds duration) override {
    const std::lock_guard lock(mutex_);
    const std::int64_t now = NowMs();
    Run run(acquire_lease_, "acquire a lease", incident_id, handler, owner,
            now + duration.count(), now);
    run.Next();
    return run.Changes() == 1;
  }

  void ReleaseLease(std::string_view incident_id, std::string_view handler, std::string_view owner) override {
    const std::lock_guard lock(mutex_);
    Run(release_lease_, "release a lease", incident_id, handler, owner).Next();
  }

  void DeleteIncidentState(std::string_view incident_id) override {
    const std::lock_guard lock(mutex_);
    constexpr std::string_view kOperation = "delete an incident's state";
    Transaction transaction(begin_, commit_, rollback_, kOperation);
    Run(delete_persisted_, kOperation, incident_id).Next();
    Run(delete_leases_, kOperation, incident_id).Next();
    transaction.Commit();
  }

  std::int64_t CountUnfinishedDelivery(std::string_view queue, std::string_view message_key) override {
    const std::lock_guard lock(mutex_);
    const std::int64_t now = NowMs();
    const std::int64_t expired_before = now - kUnfinishedDeliveryExpiry.count();
    // Counts nobody finished or sent back (a dead letter purged from its queue) would stay for
    // ever: drop the expired ones, at most once an hour, on this path that only redeliveries take.
    // A failed prune throws as the count would, and is not tried again for an hour either.
    if (now >= next_unfinished_prune_at_) {
      next_unfinished_prune_at_ = now + kUnfinishedPruneInterval.count();
      Run(prune_unfinished_deliveries_, "drop expired counts of unfinished deliveries", expired_before).Next();
    }
    Run run(count_unfinished_delivery_, "count an unfinished delivery", queue, message_key, now, expired_before);
    if (!run.Next()) Corrupt("counting an unfinished delivery returned no count");
    return run.Int(0);
  }

  void ForgetUnfinishedDeliveries(std::string_view queue, std::string_view message_key) override {
    const std::lock_guard lock(mutex_);
    Run(forget_unfinished_deliveries_, "forget a message's unfinished deliveries", queue, message_key).Next();
  }

 private:
  // Columns as select_incident_ and list_incidents_ return them.
  Incident ReadIncident(const Run& run) const {
    Incident incident;
    incident.id = run.Text(0);
    incident.kind = run.Text(1);
    incident.name = run.Text(2);
    const std::string status = run.Text(3);
    const auto parsed = ParseIncidentStatus(status);
    if (!parsed) Corrupt("incident " + incident.id + " has the unknown status '" + status + "'");
    incident.status = *parsed;
    incident.comment = run.Text(4);
    incident.created_at = run.Int(5);
    incident.updated_at = run.Int(6);
    return incident;
  }

  MessageStatus ParseMessageStatus(const std::string& text, const std::string& message_id) const {
    for (const MessageStatus status : {MessageStatus::kSent, MessageStatus::kProcessing, MessageStatus::kComplete,
                                       MessageStatus::kError, MessageStatus::kNotProcessed}) {
      if (ToString(status) == text) return status;
    }
    Corrupt("message " + message_id + " has the unknown status '" + text + "'");
  }

  [[noreturn]] void Corrupt(const std::string& what) const {
    throw StateStoreError("state store " + db_.path() + ": " + what);
  }

  static std::vector<std::string> Column(Run&& run) {
    std::vector<std::string> values;
    while (run.Next()) values.push_back(run.Text(0));
    return values;
  }

  std::uint64_t ChangeVersion() override {
    const std::lock_guard lock(version_mutex_);
    Run run(data_version_, "read the data version");
    if (!run.Next()) Corrupt("PRAGMA data_version returned no row");
    return static_cast<std::uint64_t>(run.Int(0));
  }

  static constexpr std::chrono::milliseconds kUnfinishedPruneInterval = std::chrono::hours(1);

  std::mutex mutex_;
  Database db_;
  std::int64_t next_unfinished_prune_at_ = 0;  // guarded by mutex_
  // PRAGMA data_version moves with every commit of another connection; read on a connection
  // that never writes, it moves with every commit at all, this process's included. Its own lock:
  // a check must not wait behind a long write on db_.
  std::mutex version_mutex_;
  Database version_db_;
  Statement data_version_{version_db_, "PRAGMA data_version"};
  boost::uuids::random_generator uuid_generator_;

  Statement begin_{db_, "BEGIN IMMEDIATE"};
  Statement commit_{db_, "COMMIT"};
  Statement rollback_{db_, "ROLLBACK"};

  Statement insert_incident_{db_, R"sql(
      INSERT INTO incidents (id, kind, name, status, comment, created_at, updated_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6))sql"};
  Statement select_incident_{db_, R"sql(
      SELECT id, kind, name, status, comment, created_at, updated_at FROM incidents WHERE id = ?1)sql"};
  // Only a PENDING or ACTIVE incident moves, and only a PENDING one to ACTIVE.
  Statement transition_incident_{db_, R"sql(
      UPDATE incidents SET status = ?2, comment = coalesce(nullif(?3, ''), comment), updated_at = ?4
      WHERE id = ?1 AND ?2 <> 'PENDING' AND (status = 'PENDING' OR (status = 'ACTIVE' AND ?2 <> 'ACTIVE')))sql"};
  Statement list_incidents_{db_, R"sql(
      SELECT id, kind, name, status, comment, created_at, updated_at FROM incidents
      WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
      ORDER BY created_at DESC, rowid DESC LIMIT ?3)sql"};

  // The merge rule of MessageEvent (and FoldMessageEvents), for a row folded from a batch onto the
  // row already stored. The status only moves forward: from SENT to anything else, from
  // PROCESSING to a final status, never from a final one. The comment comes with the status that
  // moved it; the description fills in where empty; each timestamp is set once.
  Statement upsert_message_{db_, R"sql(
      INSERT INTO messages (message_id, incident_id, status, originator, destination, src_tag, dest_tag,
                            body_prefix, consumer, comment, sent_at, processing_at, finished_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
      ON CONFLICT (message_id) DO UPDATE SET
        status = CASE WHEN status IN ('SENT', 'PROCESSING') AND excluded.status NOT IN ('SENT', status)
                      THEN excluded.status ELSE status END,
        comment = CASE WHEN status IN ('SENT', 'PROCESSING') AND excluded.status NOT IN ('SENT', status)
                            AND excluded.comment <> ''
                       THEN excluded.comment ELSE comment END,
        incident_id = coalesce(nullif(incident_id, ''), excluded.incident_id),
        originator = coalesce(nullif(originator, ''), excluded.originator),
        destination = coalesce(nullif(destination, ''), excluded.destination),
        src_tag = coalesce(nullif(src_tag, ''), excluded.src_tag),
        dest_tag = coalesce(nullif(dest_tag, ''), excluded.dest_tag),
        body_prefix = coalesce(nullif(body_prefix, ''), excluded.body_prefix),
        consumer = coalesce(nullif(consumer, ''), excluded.consumer),
        sent_at = coalesce(sent_at, excluded.sent_at),
        processing_at = coalesce(processing_at, excluded.processing_at),
        finished_at = coalesce(finished_at, excluded.finished_at))sql"};
  Statement select_message_log_{db_, R"sql(
      SELECT message_id, incident_id, status, originator, destination, src_tag, dest_tag, body_prefix,
             consumer, comment, sent_at, processing_at, finished_at
      FROM messages WHERE incident_id = ?1
      ORDER BY coalesce(sent_at, processing_at, finished_at), rowid)sql"};
  Statement count_in_flight_{db_, R"sql(
      SELECT count(*) FROM messages WHERE incident_id = ?1 AND status IN ('SENT', 'PROCESSING'))sql"};

  Statement insert_persisted_{db_, R"sql(
      INSERT INTO persisted (incident_id, handler, json) VALUES (?1, ?2, ?3))sql"};
  Statement select_persisted_{db_, R"sql(
      SELECT json FROM persisted WHERE incident_id = ?1 AND handler = ?2 ORDER BY seq)sql"};
  Statement select_all_persisted_{db_, R"sql(
      SELECT json FROM persisted WHERE incident_id = ?1 ORDER BY seq)sql"};

  // One statement, so that of two processes racing for a free or expired lease exactly one
  // changes the row: the other's conditional update then sees the winner's owner and live expiry.
  Statement acquire_lease_{db_, R"sql(
      INSERT INTO leases (incident_id, handler, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (incident_id, handler) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
      WHERE leases.owner = excluded.owner OR leases.expires_at <= ?5)sql"};
  Statement release_lease_{db_, R"sql(
      DELETE FROM leases WHERE incident_id = ?1 AND handler = ?2 AND owner = ?3)sql"};

  Statement delete_persisted_{db_, "DELETE FROM persisted WHERE incident_id = ?1"};
  Statement delete_leases_{db_, "DELETE FROM leases WHERE incident_id = ?1"};

  Statement count_unfinished_delivery_{db_, R"sql(
      INSERT INTO unfinished_deliveries (queue, message_key, deliveries, updated_at) VALUES (?1, ?2, 1, ?3)
      ON CONFLICT (queue, message_key) DO UPDATE
        SET deliveries = CASE WHEN updated_at < ?4 THEN 1 ELSE deliveries + 1 END, updated_at = excluded.updated_at
      RETURNING deliveries)sql"};
  Statement forget_unfinished_deliveries_{db_, R"sql(
      DELETE FROM unfinished_deliveries WHERE queue = ?1 AND message_key = ?2)sql"};
  Statement prune_unfinished_deliveries_{db_, "DELETE FROM unfinished_deliveries WHERE updated_at < ?1"};
};

}  // namespace

std::unique_ptr<StateStore> OpenSqliteStateStore(const std::filesystem::path& path) {
  if (path.has_parent_path()) {
    std::error_code error;
    fs::create_directories(path.parent_path(), error);
    if (error) {
      throw StateStoreError("state store " + path.string() + ": cannot create the directory " +
                            path.parent_path().string() + ": " + error.message());
    }
  }
  Database db(path);
  Configure(db);
  Migrate(db);
  Database version_db(path);
  Configure(version_db);
  return std::make_unique<SqliteStateStore>(std::move(db), std::move(version_db));
}

}  // namespace workflowd
