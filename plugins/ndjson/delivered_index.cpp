#include "delivered_index.hpp"

#include <utility>
#include <wep/plugin.hpp>

namespace wep::ndjson {
namespace {

constexpr const char* kFormat = "wep-ndjson-index 1";

constexpr const char* kSchema = R"sql(
CREATE TABLE meta (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  format         TEXT NOT NULL,
  indexed_bytes  INTEGER NOT NULL,
  first_event_id TEXT NOT NULL
);
CREATE TABLE delivered (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
)sql";

std::string message_of(sqlite3* db) { return db ? sqlite3_errmsg(db) : "out of memory"; }

void close_quietly(sqlite3* db) {
  if (db) sqlite3_close_v2(db);
}

}  // namespace

DeliveredIndex::DeliveredIndex(sqlite3* db, std::filesystem::path file) : db_(db), file_(std::move(file)) {}

DeliveredIndex::~DeliveredIndex() {
  sqlite3_finalize(contains_);
  sqlite3_finalize(insert_);
  close_quietly(db_);
}

void DeliveredIndex::fail(const std::string& what) const {
  throw wep::Error(WEP_ERR_FAILED, "ndjson index " + file_.string() + ": " + what + ": " + message_of(db_));
}

std::unique_ptr<DeliveredIndex> DeliveredIndex::open_existing(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return nullptr;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = message_of(db);
    close_quietly(db);
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "'" + file.string() + "' cannot be opened as an index: " + why);
  }
  std::unique_ptr<DeliveredIndex> index(new DeliveredIndex(db, file));
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  bool is_index = false;
  if (sqlite3_prepare_v2(db, "SELECT format FROM meta WHERE id = 1", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* format = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    is_index = format && std::string_view(format) == kFormat;
  }
  sqlite3_finalize(stmt);
  if (!is_index)
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT,
                     "'" + file.string() + "' is not an ndjson index (" + kFormat + "); move it away");
  index->prepare();
  index->load_state();
  return index;
}

std::unique_ptr<DeliveredIndex> DeliveredIndex::create(const std::filesystem::path& file) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string why = message_of(db);
    close_quietly(db);
    throw wep::Error(WEP_ERR_FAILED, "ndjson: cannot create the index '" + file.string() + "': " + why);
  }
  std::unique_ptr<DeliveredIndex> index(new DeliveredIndex(db, file));
  sqlite3_busy_timeout(db, 5000);
  const std::string setup = std::string("BEGIN;") + kSchema +
                            "INSERT INTO meta (id, format, indexed_bytes, first_event_id) VALUES (1, '" + kFormat +
                            "', 0, ''); COMMIT;";
  if (sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) index->fail("creating its tables");
  index->prepare();
  index->load_state();
  return index;
}

void DeliveredIndex::prepare() {
  // WAL + NORMAL: a crash may lose the last commits (the start-up scan redoes
  // them from the NDJSON file) but never corrupts the index. A small page
  // cache bounds the memory whatever the number of ids.
  if (sqlite3_exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-2048", nullptr, nullptr,
                   nullptr) != SQLITE_OK)
    fail("configuring");
  if (sqlite3_prepare_v2(db_, "SELECT 1 FROM delivered WHERE event_id = ?1", -1, &contains_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO delivered (event_id) VALUES (?1)", -1, &insert_, nullptr) !=
          SQLITE_OK)
    fail("preparing statements");
}

void DeliveredIndex::load_state() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT indexed_bytes, first_event_id FROM meta WHERE id = 1", -1, &stmt, nullptr) !=
          SQLITE_OK ||
      sqlite3_step(stmt) != SQLITE_ROW) {
    sqlite3_finalize(stmt);
    fail("reading its state");
  }
  const sqlite3_int64 bytes = sqlite3_column_int64(stmt, 0);
  state_.indexed_bytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
  const auto* first = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
  state_.first_event_id = first ? first : "";
  sqlite3_finalize(stmt);
}

bool DeliveredIndex::contains(std::string_view event_id) {
  sqlite3_bind_text(contains_, 1, event_id.data(), static_cast<int>(event_id.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(contains_);
  sqlite3_reset(contains_);
  sqlite3_clear_bindings(contains_);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("looking an id up");
  return rc == SQLITE_ROW;
}

void DeliveredIndex::begin() {
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) fail("starting a transaction");
}

void DeliveredIndex::add(std::string_view event_id) {
  sqlite3_bind_text(insert_, 1, event_id.data(), static_cast<int>(event_id.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(insert_);
  sqlite3_reset(insert_);
  sqlite3_clear_bindings(insert_);
  if (rc != SQLITE_DONE) fail("adding an id");
}

void DeliveredIndex::clear() {
  if (sqlite3_exec(db_, "DELETE FROM delivered", nullptr, nullptr, nullptr) != SQLITE_OK) fail("clearing");
}

void DeliveredIndex::commit(const State& state) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "UPDATE meta SET indexed_bytes = ?1, first_event_id = ?2 WHERE id = 1", -1, &stmt,
                         nullptr) != SQLITE_OK)
    fail("recording its state");
  sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(state.indexed_bytes));
  sqlite3_bind_text(stmt, 2, state.first_event_id.data(), static_cast<int>(state.first_event_id.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) fail("recording its state");
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) fail("committing");
  state_ = state;
}

void DeliveredIndex::roll_back() noexcept {
  if (db_ && !sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace wep::ndjson
