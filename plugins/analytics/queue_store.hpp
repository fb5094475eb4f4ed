// QueueStore: one SQLite connection to the analytics queue database
// (schemas/analytics_queue.sql): the spec's analytics_queue table, the
// dead-letter table, the O(1) pending counter and the event-log checkpoint.
//
// Thread safety: a QueueStore is used by one thread at a time. Several
// QueueStores (threads or processes) may open the same file: WAL mode and a
// busy timeout make them safe together.
//
// Errors: methods throw wep::analytics::StoreError (with the SQLite message) when
// the database is unusable; callers report it and carry on.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <wep/sqlite/sqlite.hpp>

#include "event_id.hpp"     // QueuedRow::event_id
#include "time_format.hpp"  // QueuedRow::created_at_utc

namespace wep::analytics {

using StoreError = wep::sqlite::Error;
using wep::sqlite::is_busy;
using wep::sqlite::is_corruption;
using wep::sqlite::is_moved;
// How a QueueStore connection is set up. Defaults suit the plugin.
using StoreOptions = wep::sqlite::ConnectionOptions;

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
  std::string created_at;      // as stored (spec format)
  std::string event_id;        // stable UUID, see event_id_for()
  std::string created_at_utc;  // created_at for the wire, see iso8601_utc()
};

// Bytes a row takes in a request body, the unit of batch_max_bytes: its text
// columns (event_type, properties, user_id, created_at) plus
// kRowWireOverheadBytes, an upper bound of what the transports' row object
// adds (wep::transport::RowEncoder: the 36-character event id, the five
// keys, quotes, separators, the 'Z' of the wire time, "null" for a missing
// value, the body's brackets).
inline constexpr size_t kRowWireOverheadBytes = 128;
size_t queued_row_bytes(const QueuedRow& row);

// Row ids first..last, both included. Delivered batches are runs of
// consecutive ids (AUTOINCREMENT, one writer), so a batch is usually one
// range and deleting it is one statement.
struct IdRange {
  int64_t first = 0;
  int64_t last = 0;
  int64_t size() const { return last - first + 1; }
};

// Appends `id` to `ranges`, extending the last range when `id` follows it.
void append_id(std::vector<IdRange>& ranges, int64_t id);

// `ids` as maximal runs of consecutive ids: [3, 4, 5, 9] -> [3..5], [9..9].
std::vector<IdRange> id_ranges(std::span<const int64_t> ids);

// How far the plugin has processed the host's event log: the sequence of the
// last mutation it processed (whether it stored a row for it or not) and
// analytics_enabled as of that mutation; and whether a start-up catch-up is
// under way, whose rows are held back from delivery (see
// QueueStore::read_after and schemas/analytics_queue.sql, migration 5).
struct Checkpoint {
  int64_t last_sequence = 0;
  bool enabled = true;
  // Rows with id >= hold_from_id are held. Writing a checkpoint with
  // holding and hold_from_id 0 holds from the first row stored after it
  // (an existing hold is kept); writing one without holding releases them.
  bool holding = false;
  int64_t hold_from_id = 0;
  bool operator==(const Checkpoint&) const = default;
};

// One step of an age-out pass (see QueueStore::age_out_step).
struct AgeOutStep {
  int64_t deleted = 0;    // rows removed by this step
  int64_t last_id = 0;    // continue the pass after this id
  bool finished = false;  // no rows left after last_id
};

class QueueStore {
 public:
  // Opens (creating and migrating if needed) the database at `path`:
  // WAL, synchronous=NORMAL, busy timeout, the schema migrated forward to
  // the newest version in schemas/analytics_queue.sql. Throws StoreError
  // (is_corruption() tells a damaged file). A read-only file opens (reads
  // work; writes throw SQLITE_READONLY) if it needs no migration.
  explicit QueueStore(const std::string& path, const StoreOptions& options = {});
  ~QueueStore();
  QueueStore(const QueueStore&) = delete;
  QueueStore& operator=(const QueueStore&) = delete;

  // Inserts all rows in one transaction.
  void insert(std::span<const NewRow> rows) { insert_capped(rows, 0); }

  // Inserts all rows and, in the same transaction, drops the oldest rows
  // past `max_rows` (> 0; 0: no cap) and, if given, stores `checkpoint`
  // (before the rows, so that a hold it starts covers them). With
  // `discard_held`, first deletes every held row (id >= the stored
  // hold_from_id; none when nothing is held) and adds their number to
  // `*discarded` (if given). Returns how many rows the cap dropped.
  int64_t insert_capped(std::span<const NewRow> rows, int64_t max_rows,
                        const std::optional<Checkpoint>& checkpoint = std::nullopt, bool discard_held = false,
                        int64_t* discarded = nullptr);

  // Inserts rows salvaged from another queue file, keeping their ids (and so
  // their event ids: a row delivered before the damage is deduplicated by the
  // backend), in one transaction; an id already present is skipped. Stores
  // `checkpoint` too, if given. Returns the rows inserted.
  int64_t restore(std::span<const QueuedRow> rows, const std::optional<Checkpoint>& checkpoint = std::nullopt);

  // Copies the WAL into the database file and empties the WAL (PRAGMA
  // wal_checkpoint(TRUNCATE)); used before letting go of a file that was
  // deleted or replaced, so that its WAL (which keeps the name at the path)
  // holds nothing a new file at that path could take for its own.
  void checkpoint_and_empty_wal();

  // Whether this connection copies the WAL into the database file itself
  // when a commit takes it past 1,000 pages (SQLite's automatic checkpoint;
  // on by default). Off while a WalCopier does it.
  void set_automatic_checkpoints(bool on);

  // The stored checkpoint; nothing if none was ever stored.
  std::optional<Checkpoint> checkpoint();

  // The rows with id > after_id in id order, leaving out held rows (see
  // Checkpoint): at most max_rows and, past the first row, at most max_bytes
  // (queued_row_bytes). Fills `rows`, reusing its elements and their
  // strings.
  void read_after(int64_t after_id, size_t max_rows, size_t max_bytes, std::vector<QueuedRow>& rows);

  // Deletes delivered rows (every row whose id is in one of the ranges), in
  // one transaction, one statement per range.
  void remove(std::span<const IdRange> ranges);
  void remove(std::span<const int64_t> ids) { remove(id_ranges(ids)); }

  // Moves rows to analytics_dead_letter with the reason, in one transaction.
  void dead_letter(std::span<const int64_t> ids, std::string_view reason);

  // Moves every dead-lettered row back to analytics_queue under its old id
  // (so it keeps its event id and goes out before newer rows), in one
  // transaction. Returns the number of rows put back.
  int64_t requeue_dead_letters();

  // Number of rows in analytics_queue. O(1): reads the counter that every
  // QueueStore write keeps in step (analytics_queue_count).
  int64_t count();

  // Recounts the rows (O(n)) and stores the result in the counter, repairing
  // drift from writes made outside QueueStore. Returns the count.
  int64_t recount();

  // Rows in analytics_dead_letter.
  int64_t dead_letter_count();

  // One bounded step of an age-out pass: looks at up to `scan_rows` rows
  // with id > after_id (in id order) and deletes those whose created_at <
  // `cutoff_created_at` (spec format), in one short transaction. A pass
  // starts at after_id = 0 and goes on from last_id until finished, so the
  // write lock is never held for long even at millions of rows.
  AgeOutStep age_out_step(std::string_view cutoff_created_at, int64_t after_id, int64_t scan_rows);

  // Deletes dead-letter rows whose created_at < cutoff. Returns the number.
  int64_t age_out_dead_letter(std::string_view cutoff_created_at);

  // The schema version this build migrates to (the last @migration step).
  static int latest_schema_version();
  // PRAGMA user_version of the open database.
  int schema_version();

  const std::string& path() const { return connection_->path(); }

 private:
  std::unique_ptr<wep::sqlite::Connection> connection_;
  struct Statements;  // every statement, prepared once; destroyed before the connection
  std::unique_ptr<Statements> statements_;
};

}  // namespace wep::analytics
