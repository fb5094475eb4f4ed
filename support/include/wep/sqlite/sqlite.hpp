// Small RAII helpers over the SQLite C API, shared by every SQLite file of
// the project (the analytics queue, the host stub's database): a connection,
// a prepared statement, a write transaction, and the error type they throw.
//
// Thread safety: a Connection and its statements are used by one thread at a
// time (connections are opened with SQLITE_OPEN_NOMUTEX); callers that share
// one across threads serialise it themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace wep::sqlite {

// A failed SQLite call: the message names the label, what was being done,
// SQLite's own message and the file; code() is the (extended) result code.
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged or no database at all.
bool is_corruption(const Error& error);
// SQLITE_BUSY / SQLITE_LOCKED: another connection held the lock past the
// busy timeout; trying again later may work.
bool is_busy(const Error& error);
// SQLITE_READONLY_DBMOVED: the file was deleted or renamed under the open
// connection; writes fail until the path is opened again.
bool is_moved(const Error& error);

// Runs `f()` again while it throws a busy Error (is_busy), sleeping a few
// milliseconds between attempts, until `timeout_ms` have passed; then the
// last error propagates. For set-up steps where SQLite does not call the busy
// handler (switching to WAL, a concurrent WAL recovery, lock upgrades).
void retry_while_busy(uint32_t timeout_ms, const std::function<void()>& f);

struct ConnectionOptions {
  uint32_t busy_timeout_ms = 5000;  // wait this long for another writer
  int64_t max_database_bytes = 0;   // > 0: PRAGMA max_page_count cap (writes past it fail with SQLITE_FULL)
  bool create_if_missing = true;    // false: a missing file is an error (SQLITE_CANTOPEN), not a new database
};

// One open database file in WAL mode with synchronous=NORMAL: a committed
// transaction survives a crash or SIGKILL of the process (it is in the WAL
// before the commit returns) and the file never corrupts; only a power loss
// or OS crash may lose the last few commits. The writer never blocks readers,
// and several processes can share the file. Closing finalizes nothing: every
// Statement of the connection must be destroyed first.
class Connection {
 public:
  // Opens `path`, creating it if needed (unless options.create_if_missing
  // is false). `label` starts every error message, e.g. "analytics queue".
  // Another process setting up the same file at the same moment is waited
  // for (up to busy_timeout_ms), never reported as "database is locked".
  // Throws Error.
  Connection(const std::string& path, std::string label, const ConnectionOptions& options = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  uint32_t busy_timeout_ms() const { return busy_timeout_ms_; }

  // Runs SQL without results (one or more statements). Throws Error.
  void exec(std::string_view sql, std::string_view context);
  // The first column of the first row of `sql` as an integer (0 if none).
  int64_t query_int(const char* sql, std::string_view context);
  // Throws Error with `code`, the context, SQLite's message and the file.
  [[noreturn]] void fail(int code, std::string_view context) const;

 private:
  std::string path_;
  std::string label_;
  uint32_t busy_timeout_ms_ = 0;
  sqlite3* db_ = nullptr;
};

// A prepared statement. Persistent ones are prepared once per connection and
// reset after every use (run(), or reset() after the last step()).
class Statement {
 public:
  Statement(Connection& connection, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binders return *this for chaining. Text is bound with SQLITE_STATIC: it
  // must outlive the next step().
  Statement& text(int index, std::string_view value);
  Statement& optional_text(int index, const std::optional<std::string>& value);
  Statement& integer(int index, int64_t value);

  // Steps once: true if a row is available. On error resets and throws.
  bool step(std::string_view context);
  // Runs a statement that returns no rows, then resets; returns the changes.
  int64_t run(std::string_view context);
  // Resets and clears the bindings (ends the statement's read transaction).
  void reset();

  int64_t column_int(int column) const;
  bool column_is_null(int column) const;
  std::string column_text(int column) const;
  std::optional<std::string> column_optional_text(int column) const;
  // Assigns into `out`, reusing its capacity.
  void assign_text(int column, std::string& out) const;
  void assign_optional_text(int column, std::optional<std::string>& out) const;

 private:
  Connection& connection_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless committed. IMMEDIATE takes
// the write lock up front (waiting up to the busy timeout), so a transaction
// never fails half-way for lock reasons. The three statements are cached per
// connection in TransactionStatements.
struct TransactionStatements {
  explicit TransactionStatements(Connection& connection);
  Statement begin_immediate, commit, rollback;
};

class WriteTransaction {
 public:
  WriteTransaction(TransactionStatements& statements, std::string_view context);
  ~WriteTransaction();
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  void commit(std::string_view context);

 private:
  TransactionStatements& statements_;
  bool committed_ = false;
};

// Runs `f()` inside BEGIN IMMEDIATE ... COMMIT on `connection` without
// cached statements (for rare writes); rolls back if f throws.
template <class F>
void in_transaction(Connection& connection, std::string_view context, F&& f) {
  connection.exec("BEGIN IMMEDIATE", context);
  try {
    f();
    connection.exec("COMMIT", context);
  } catch (...) {
    try {
      connection.exec("ROLLBACK", "rolling back");
    } catch (const Error&) {
      // SQLite already rolled back after some errors (e.g. SQLITE_FULL).
    }
    throw;
  }
}

}  // namespace wep::sqlite
