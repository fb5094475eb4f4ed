#include "queue_salvage.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <limits>
#include <vector>

namespace wep::analytics {
namespace {

// Ids tried one by one past the last readable row before giving up (when the
// highest id is not known): a few damaged leaf pages' worth.
constexpr int64_t kMaxBlindSkips = 100000;

// `path` for a file: URI (%, ? and # escaped).
std::string uri_escaped(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += kHex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

// A read-only connection, closed on scope exit.
struct ReadOnlyDatabase {
  sqlite3* db = nullptr;
  explicit ReadOnlyDatabase(const std::string& path) {
    // Without a -wal file the database is opened immutable: nothing is
    // created next to it (no -shm) and no lock is taken. With one, its
    // commits are read too.
    std::error_code ignored;
    const bool has_wal = std::filesystem::exists(path + "-wal", ignored);
    const std::string name = has_wal ? path : "file:" + uri_escaped(path) + "?immutable=1";
    const int flags = SQLITE_OPEN_READONLY | (has_wal ? 0 : SQLITE_OPEN_URI);
    if (sqlite3_open_v2(name.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db);
      db = nullptr;
    }
  }
  ~ReadOnlyDatabase() { sqlite3_close_v2(db); }
  ReadOnlyDatabase(const ReadOnlyDatabase&) = delete;
  ReadOnlyDatabase& operator=(const ReadOnlyDatabase&) = delete;
};

struct PreparedStatement {
  sqlite3_stmt* stmt = nullptr;
  PreparedStatement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      stmt = nullptr;
    }
  }
  ~PreparedStatement() { sqlite3_finalize(stmt); }
  PreparedStatement(const PreparedStatement&) = delete;
  PreparedStatement& operator=(const PreparedStatement&) = delete;
};

// The first column of the one-row query, or nothing if it fails.
std::optional<int64_t> query_int(sqlite3* db, const char* sql) {
  PreparedStatement query(db, sql);
  if (!query.stmt || sqlite3_step(query.stmt) != SQLITE_ROW) return std::nullopt;
  if (sqlite3_column_type(query.stmt, 0) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(query.stmt, 0);
}

void assign_text(sqlite3_stmt* stmt, int column, std::string& out) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  out.assign(text ? text : "", static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}

void assign_optional_text(sqlite3_stmt* stmt, int column, std::optional<std::string>& out) {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) {
    out.reset();
    return;
  }
  if (!out) out.emplace();
  assign_text(stmt, column, *out);
}

}  // namespace

SalvageResult salvage_queue_rows(const std::string& path, size_t chunk_rows,
                                 const std::function<void(std::span<const QueuedRow>)>& sink) {
  SalvageResult result;
  ReadOnlyDatabase database(path);
  if (!database.db) return result;
  sqlite3_extended_result_codes(database.db, 1);

  if (PreparedStatement read_checkpoint(database.db,
                                        "SELECT last_sequence, enabled FROM analytics_checkpoint WHERE singleton = 1");
      read_checkpoint.stmt && sqlite3_step(read_checkpoint.stmt) == SQLITE_ROW) {
    result.checkpoint =
        Checkpoint{sqlite3_column_int64(read_checkpoint.stmt, 0), sqlite3_column_int64(read_checkpoint.stmt, 1) != 0};
    // A hold (a file from before migration 5 has none) stays with the rows,
    // which keep their ids.
    if (const auto hold_from_id =
            query_int(database.db, "SELECT hold_from_id FROM analytics_checkpoint WHERE singleton = 1")) {
      result.checkpoint->holding = true;
      result.checkpoint->hold_from_id = *hold_from_id;
    }
  }

  // The highest id ever given (AUTOINCREMENT keeps it in sqlite_sequence, a
  // small table of its own) or the highest id found: where skipping ends.
  std::optional<int64_t> last_id =
      query_int(database.db, "SELECT seq FROM sqlite_sequence WHERE name = 'analytics_queue'");
  if (const auto max_id = query_int(database.db, "SELECT max(id) FROM analytics_queue")) {
    last_id = std::max(last_id.value_or(0), *max_id);
  }

  PreparedStatement read(database.db,
                         "SELECT id, event_type, properties, user_id, created_at FROM analytics_queue "
                         "WHERE id > ?1 ORDER BY id");
  if (!read.stmt) return result;  // no readable schema

  std::vector<QueuedRow> chunk(chunk_rows == 0 ? 1 : chunk_rows);
  size_t used = 0;
  auto hand_over = [&] {
    if (used == 0) return;
    sink(std::span<const QueuedRow>(chunk.data(), used));
    result.rows += static_cast<int64_t>(used);
    used = 0;
  };

  int64_t after_id = 0;
  int64_t blind_skips = 0;
  for (;;) {
    sqlite3_reset(read.stmt);
    sqlite3_bind_int64(read.stmt, 1, after_id);
    int rc;
    while ((rc = sqlite3_step(read.stmt)) == SQLITE_ROW) {
      const int64_t id = sqlite3_column_int64(read.stmt, 0);
      if (id <= after_id) continue;  // a damaged page may repeat or misorder ids
      QueuedRow& row = chunk[used];
      row.id = id;
      assign_text(read.stmt, 1, row.event_type);
      assign_optional_text(read.stmt, 2, row.properties_json);
      assign_optional_text(read.stmt, 3, row.user_id);
      assign_text(read.stmt, 4, row.created_at);
      after_id = id;
      blind_skips = 0;
      if (++used == chunk.size()) hand_over();
    }
    if (rc == SQLITE_DONE) break;
    // A failed read: skip past the id after the last good row and go on.
    if (after_id == std::numeric_limits<int64_t>::max()) break;
    ++after_id;
    ++result.skipped_ids;
    if (last_id ? after_id >= *last_id : ++blind_skips > kMaxBlindSkips) break;
  }
  hand_over();
  return result;
}

}  // namespace wep::analytics
