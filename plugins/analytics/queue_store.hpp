// QueueStore: one SQLite connection to the analytics_queue database.
//
// Thread safety: a QueueStore is used by one thread at a time. Several
// QueueStores (threads or processes) may open the same file: WAL mode and a
// busy timeout make them safe together.
//
// Errors: methods throw analytics::StoreError (with the SQLite message) when
// the database is unusable; callers report it and carry on.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace analytics {

class StoreError : public std::runtime_error {
 public:
  StoreError(int sqlite_code, const std::string& what) : std::runtime_error(what), sqlite_code_(sqlite_code) {}
  int sqlite_code() const { return sqlite_code_; }

 private:
  int sqlite_code_;
};

// One row to insert. created_at uses the spec's format, UTC without zone:
// "2026-11-20T10:00:00.123".
struct NewRow {
  std::string event_type;
  std::optional<std::string> properties_json;
  std::optional<std::string> user_id;
  std::string created_at;
};

// One row as read back for delivery.
struct QueuedRow {
  int64_t id = 0;
  std::string event_type;
  std::optional<std::string> properties_json;
  std::optional<std::string> user_id;
  std::string created_at;  // as stored (spec format)
  std::string event_id;    // stable UUID, see event_id_for()
};

// The stable event id of a row: a name-based (SHA-1, version 5) UUID of the
// row's user id, row id and created_at, so the spec's table stays as written
// and every re-send of the row carries the same id.
std::string event_id_for(std::string_view user_id, int64_t row_id, std::string_view created_at);

// "2026-11-20T10:00:00.123" -> "2026-11-20T10:00:00.123Z" (ISO 8601 UTC).
std::string iso8601_utc(std::string_view stored_created_at);

class QueueStore {
 public:
  // Opens (creating and migrating if needed) the database at `path`.
  explicit QueueStore(const std::string& path);
  ~QueueStore();
  QueueStore(const QueueStore&) = delete;
  QueueStore& operator=(const QueueStore&) = delete;

  // Inserts all rows in one transaction.
  void insert(std::span<const NewRow> rows);

  // The oldest rows (ORDER BY id), at most max_rows and, past the first row,
  // at most max_bytes of event_type + properties + user_id + created_at.
  std::vector<QueuedRow> read_oldest(size_t max_rows, size_t max_bytes);

  // Deletes delivered rows, in one transaction.
  void remove(std::span<const int64_t> ids);

  // Moves rows to analytics_dead_letter with the reason, in one transaction.
  void dead_letter(std::span<const int64_t> ids, std::string_view reason);

  // Number of rows in analytics_queue.
  int64_t count();

  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
  // prepared statements live in the implementation
  struct Statements;
  Statements* statements_ = nullptr;
};

}  // namespace analytics
