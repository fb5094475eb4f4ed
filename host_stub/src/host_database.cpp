#include "host_database.hpp"

#include <sqlite3.h>

#include <chrono>
#include <host_stub/host.hpp>
#include <vector>

namespace host_stub {
namespace {

constexpr int kSchemaVersion = 2;
// Rows read_after copies per step under the connection's lock.
constexpr int64_t kReadChunkRows = 1024;

// Migration to user_version 1. Forward-only; run inside one transaction.
constexpr const char* kMigrationV1 = R"sql(
CREATE TABLE IF NOT EXISTS events (
  sequence INTEGER PRIMARY KEY,      -- never deleted, so never reused
  type TEXT NOT NULL,
  payload TEXT NOT NULL,             -- a JSON object, compact
  committed_at INTEGER NOT NULL      -- Unix epoch milliseconds, UTC
);
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL        -- Unix epoch milliseconds, UTC
);
CREATE TABLE IF NOT EXISTS identity (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  pseudonymous_id TEXT NOT NULL,     -- random UUID v4; never an auth identifier
  created_at INTEGER NOT NULL
);
PRAGMA user_version = 1;
)sql";

// Migration to user_version 2: setting changes join the event log, each
// placed after the mutation committed last before it.
constexpr const char* kMigrationV2 = R"sql(
CREATE TABLE IF NOT EXISTS setting_changes (
  id INTEGER PRIMARY KEY,            -- change order
  after_sequence INTEGER NOT NULL,   -- the newest events.sequence when it was made (0: none)
  key TEXT NOT NULL,
  value_json TEXT NOT NULL,
  changed_at INTEGER NOT NULL        -- Unix epoch milliseconds, UTC
);
CREATE INDEX IF NOT EXISTS setting_changes_by_position ON setting_changes(after_sequence, id);
PRAGMA user_version = 2;
)sql";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Resets a cached statement when the scope ends, whatever happens.
struct Reset {
  sqlite3_stmt* stmt;
  ~Reset() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
};

}  // namespace

HostDatabase::HostDatabase(const std::filesystem::path& file) : file_(file) {
  const int rc =
      sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  try {
    if (rc != SQLITE_OK) fail("cannot open");
    sqlite3_extended_result_codes(db_, 1);
    // Another process (a second host-stub on the same data_dir, a crash test
    // restarting) may hold the write lock for a moment: wait, do not fail.
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    // WAL + synchronous=NORMAL: a commit survives a crash of the process
    // (SIGKILL) because the WAL is written before the commit returns; only a
    // power loss can lose the last commits. No fsync per mutation.
    exec("PRAGMA synchronous=NORMAL");
    migrate();
    auto prepare = [this](const char* sql, sqlite3_stmt** statement, const std::string& what) {
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, statement, nullptr) != SQLITE_OK)
        fail("cannot prepare the " + what);
    };
    prepare("INSERT INTO events(type, payload, committed_at) VALUES(?1, ?2, ?3)", &insert_event_, "event insert");
    prepare(
        "INSERT INTO settings(key, value_json, updated_at) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at",
        &upsert_setting_, "setting upsert");
    prepare(
        "SELECT sequence, type, payload, committed_at FROM events WHERE sequence > ?1 AND sequence <= ?2 "
        "ORDER BY sequence",
        &read_events_, "event log read");
    prepare(
        "INSERT INTO setting_changes(after_sequence, key, value_json, changed_at) "
        "VALUES((SELECT coalesce(max(sequence), 0) FROM events), ?1, ?2, ?3)",
        &log_setting_, "setting log insert");
    prepare(
        "SELECT after_sequence, key, value_json, changed_at FROM setting_changes "
        "WHERE after_sequence >= ?1 AND after_sequence < ?2 ORDER BY after_sequence, id",
        &read_settings_, "setting log read");
  } catch (...) {
    close();
    throw;
  }
}

HostDatabase::~HostDatabase() { close(); }

void HostDatabase::close() noexcept {
  for (sqlite3_stmt* statement : {insert_event_, upsert_setting_, read_events_, log_setting_, read_settings_})
    sqlite3_finalize(statement);
  sqlite3_close_v2(db_);
}

void HostDatabase::fail(std::string_view what) const {
  std::string message = "host database '" + file_.string() + "': " + std::string(what);
  if (db_) message += ": " + std::string(sqlite3_errmsg(db_));
  throw HostError(message);
}

void HostDatabase::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string text = error ? error : "unknown error";
    sqlite3_free(error);
    throw HostError("host database '" + file_.string() + "': " + text);
  }
}

void HostDatabase::migrate() {
  exec("BEGIN IMMEDIATE");
  try {
    int version = 0;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) fail("cannot read version");
    if (sqlite3_step(stmt) == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (version > kSchemaVersion) {
      throw HostError("host database '" + file_.string() + "' has schema version " + std::to_string(version) +
                      ", newer than this host's " + std::to_string(kSchemaVersion));
    }
    if (version < 1) exec(kMigrationV1);
    if (version < 2) exec(kMigrationV2);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int64_t HostDatabase::append_event(std::string_view type, std::string_view payload_json, int64_t committed_at_ms) {
  std::lock_guard lock(mutex_);
  Reset reset{insert_event_};
  sqlite3_bind_text(insert_event_, 1, type.data(), static_cast<int>(type.size()), SQLITE_STATIC);
  sqlite3_bind_text(insert_event_, 2, payload_json.data(), static_cast<int>(payload_json.size()), SQLITE_STATIC);
  sqlite3_bind_int64(insert_event_, 3, committed_at_ms);
  if (sqlite3_step(insert_event_) != SQLITE_DONE) fail("cannot append the mutation to the event log");
  return sqlite3_last_insert_rowid(db_);
}

void HostDatabase::read_after(int64_t after_sequence, const std::function<bool(const wep::LoggedEvent&)>& visit) const {
  // One log entry, copied out so the connection's lock is not held while
  // the visitor runs.
  struct Entry {
    uint32_t kind;
    int64_t sequence;    // a mutation's; a setting change's after_sequence
    std::string first;   // type / key
    std::string second;  // payload / value
    int64_t at_ms;
  };
  auto text = [](sqlite3_stmt* stmt, int column) {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
    return std::string(data ? data : "", static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
  };
  std::vector<Entry> chunk;
  // Positions (after_sequence, after_sequence + kReadChunkRows] of the
  // mutations, and the setting changes made after mutations after_sequence
  // .. after_sequence + kReadChunkRows - 1, merged: a change made after
  // mutation S comes after S and before S + 1.
  for (int64_t low = after_sequence;; low += kReadChunkRows) {
    const int64_t high = low + kReadChunkRows;
    chunk.clear();
    {
      std::lock_guard lock(mutex_);
      Reset mutations{read_events_};
      sqlite3_bind_int64(read_events_, 1, low);
      sqlite3_bind_int64(read_events_, 2, high);
      Reset settings{read_settings_};
      sqlite3_bind_int64(read_settings_, 1, low);
      sqlite3_bind_int64(read_settings_, 2, high);
      int mutation_rc = sqlite3_step(read_events_);
      int setting_rc = sqlite3_step(read_settings_);
      while (mutation_rc == SQLITE_ROW || setting_rc == SQLITE_ROW) {
        const bool setting_first = setting_rc == SQLITE_ROW &&
                                   (mutation_rc != SQLITE_ROW ||
                                    sqlite3_column_int64(read_settings_, 0) < sqlite3_column_int64(read_events_, 0));
        if (setting_first) {
          chunk.push_back({WEP_EVENT_SETTING_CHANGED, sqlite3_column_int64(read_settings_, 0), text(read_settings_, 1),
                           text(read_settings_, 2), sqlite3_column_int64(read_settings_, 3)});
          setting_rc = sqlite3_step(read_settings_);
        } else {
          chunk.push_back({WEP_EVENT_MUTATION_COMMITTED, sqlite3_column_int64(read_events_, 0), text(read_events_, 1),
                           text(read_events_, 2), sqlite3_column_int64(read_events_, 3)});
          mutation_rc = sqlite3_step(read_events_);
        }
      }
      if (mutation_rc != SQLITE_DONE || setting_rc != SQLITE_DONE) fail("cannot read the event log");
    }
    for (const Entry& entry : chunk) {
      wep::LoggedEvent event;
      event.kind = entry.kind;
      event.sequence = entry.sequence;
      if (entry.kind == WEP_EVENT_MUTATION_COMMITTED) {
        event.type = entry.first;
        event.payload_json = entry.second;
        event.committed_at_ms = entry.at_ms;
      } else {
        event.setting_key = entry.first;
        event.setting_value_json = entry.second;
      }
      if (!visit(event)) return;
    }
    if (high > last_position()) return;
  }
}

int64_t HostDatabase::last_position() const {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT max((SELECT coalesce(max(sequence), 0) FROM events), "
                         "(SELECT coalesce(max(after_sequence), 0) FROM setting_changes))",
                         -1, &stmt, nullptr) != SQLITE_OK)
    fail("cannot read the end of the event log");
  int64_t position = 0;
  if (sqlite3_step(stmt) == SQLITE_ROW) position = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return position;
}

int64_t HostDatabase::last_sequence() const {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT coalesce(max(sequence), 0) FROM events", -1, &stmt, nullptr) != SQLITE_OK)
    fail("cannot read the last sequence");
  int64_t sequence = 0;
  if (sqlite3_step(stmt) == SQLITE_ROW) sequence = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return sequence;
}

void HostDatabase::put_setting(std::string_view key, std::string_view value_json) {
  std::lock_guard lock(mutex_);
  exec("BEGIN IMMEDIATE");
  try {
    {
      Reset reset{upsert_setting_};
      sqlite3_bind_text(upsert_setting_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
      sqlite3_bind_text(upsert_setting_, 2, value_json.data(), static_cast<int>(value_json.size()), SQLITE_STATIC);
      sqlite3_bind_int64(upsert_setting_, 3, now_ms());
      if (sqlite3_step(upsert_setting_) != SQLITE_DONE) fail("cannot store setting '" + std::string(key) + "'");
    }
    {
      Reset reset{log_setting_};
      sqlite3_bind_text(log_setting_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
      sqlite3_bind_text(log_setting_, 2, value_json.data(), static_cast<int>(value_json.size()), SQLITE_STATIC);
      sqlite3_bind_int64(log_setting_, 3, now_ms());
      if (sqlite3_step(log_setting_) != SQLITE_DONE) fail("cannot log setting '" + std::string(key) + "'");
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::map<std::string, std::string> HostDatabase::load_settings() {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT key, value_json FROM settings", -1, &stmt, nullptr) != SQLITE_OK)
    fail("cannot read settings");
  std::map<std::string, std::string> settings;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto text = [&](int column) {
      const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
      return std::string(data ? data : "", static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
    };
    settings.emplace(text(0), text(1));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) fail("cannot read settings");
  return settings;
}

std::string HostDatabase::identity_or_store(const std::string& candidate) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO identity(id, pseudonymous_id, created_at) VALUES(1, ?1, ?2)", -1,
                         &stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare the identity insert");
  sqlite3_bind_text(stmt, 1, candidate.data(), static_cast<int>(candidate.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, now_ms());
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) fail("cannot store the identity");

  if (sqlite3_prepare_v2(db_, "SELECT pseudonymous_id FROM identity WHERE id = 1", -1, &stmt, nullptr) != SQLITE_OK)
    fail("cannot read the identity");
  std::string id;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    id.assign(data ? data : "", static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
  }
  sqlite3_finalize(stmt);
  if (id.empty()) fail("the identity row is missing or empty");
  return id;
}

}  // namespace host_stub
