#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <wep/sqlite/sqlite.hpp>

namespace wep::sqlite {

bool is_corruption(const Error& error) {
  const int primary = error.code() & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

bool is_busy(const Error& error) {
  const int primary = error.code() & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

void retry_while_busy(uint32_t timeout_ms, const std::function<void()>& f) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    try {
      f();
      return;
    } catch (const Error& e) {
      if (!is_busy(e) || std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool is_moved(const Error& error) { return error.code() == SQLITE_READONLY_DBMOVED; }

Connection::Connection(const std::string& path, std::string label, const ConnectionOptions& options)
    : path_(path), label_(std::move(label)), busy_timeout_ms_(options.busy_timeout_ms) {
  const int flags = SQLITE_OPEN_READWRITE | (options.create_if_missing ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  try {
    if (rc != SQLITE_OK) fail(rc, "opening the database");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout_ms));
    // A read-only file keeps its mode (the pragma then just reports it).
    // Switching a fresh file to WAL needs an exclusive lock that SQLite
    // does not wait for through the busy handler.
    retry_while_busy(options.busy_timeout_ms, [&] { exec("PRAGMA journal_mode=WAL", "enabling WAL"); });
    exec("PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL");
    if (options.max_database_bytes > 0) {
      // The cap in pages of this file's page size (4096 unless made with another).
      const int64_t page_size = std::max<int64_t>(512, query_int("PRAGMA page_size", "reading the page size"));
      const std::string sql =
          "PRAGMA max_page_count=" + std::to_string(std::max<int64_t>(1, options.max_database_bytes / page_size));
      exec(sql, "setting max_page_count");
    }
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

Connection::~Connection() { sqlite3_close_v2(db_); }

void Connection::fail(int code, std::string_view context) const {
  std::string message = label_;
  message += ": ";
  message += context;
  message += ": ";
  message += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
  message += " (";
  message += path_;
  message += ")";
  throw Error(code, message);
}

void Connection::exec(std::string_view sql, std::string_view context) {
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
    fail(sqlite3_extended_errcode(db_), context);
}

int64_t Connection::query_int(const char* sql, std::string_view context) {
  Statement statement(*this, sql);
  const int64_t value = statement.step(context) ? statement.column_int(0) : 0;
  statement.reset();
  return value;
}

Statement::Statement(Connection& connection, const char* sql) : connection_(connection) {
  const int rc = sqlite3_prepare_v3(connection.handle(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) connection.fail(rc, std::string("preparing ") + sql);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::text(int index, std::string_view value) {
  const int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (rc != SQLITE_OK) connection_.fail(rc, "binding a parameter");
  return *this;
}

Statement& Statement::optional_text(int index, const std::optional<std::string>& value) {
  if (value) return text(index, *value);
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) connection_.fail(rc, "binding a parameter");
  return *this;
}

Statement& Statement::integer(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) connection_.fail(rc, "binding a parameter");
  return *this;
}

bool Statement::step(std::string_view context) {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const int code = sqlite3_extended_errcode(connection_.handle());
  reset();
  connection_.fail(code, context);
}

int64_t Statement::run(std::string_view context) {
  step(context);
  reset();
  return sqlite3_changes64(connection_.handle());
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }

bool Statement::column_is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::string Statement::column_text(int column) const {
  std::string out;
  assign_text(column, out);
  return out;
}

std::optional<std::string> Statement::column_optional_text(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_text(column);
}

void Statement::assign_text(int column, std::string& out) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  out.assign(data ? data : "", static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

void Statement::assign_optional_text(int column, std::optional<std::string>& out) const {
  if (column_is_null(column)) {
    out.reset();
    return;
  }
  if (!out) out.emplace();
  assign_text(column, *out);
}

TransactionStatements::TransactionStatements(Connection& connection)
    : begin_immediate(connection, "BEGIN IMMEDIATE"), commit(connection, "COMMIT"), rollback(connection, "ROLLBACK") {}

WriteTransaction::WriteTransaction(TransactionStatements& statements, std::string_view context)
    : statements_(statements) {
  statements_.begin_immediate.run(context);
}

WriteTransaction::~WriteTransaction() {
  if (committed_) return;
  try {
    statements_.rollback.run("rollback");
  } catch (...) {
    // SQLite already rolled back after some errors (e.g. SQLITE_FULL);
    // "no transaction is active" is then expected.
  }
}

void WriteTransaction::commit(std::string_view context) {
  statements_.commit.run(context);
  committed_ = true;
}

}  // namespace wep::sqlite
