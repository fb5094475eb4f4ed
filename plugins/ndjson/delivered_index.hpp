// The ndjson transport's on-disk index, `<file>.index` (SQLite), next to the
// NDJSON file it describes. It is both
//   - the marker that the NDJSON file is the transport's own (a file without
//     an index is adopted only if every line is one of its rows), and
//   - the set of event ids already in the file, so that de-duplication costs
//     bounded memory (SQLite's page cache) whatever the file's size.
// It also records how many bytes of the file it covers (indexed_bytes) and
// the file's first event id, so a start scans only the lines appended after
// the last commit and notices a file that was replaced.
//
// Crash safety: WAL with synchronous=NORMAL; the NDJSON file is written and
// synced first, the index after, so after a crash the index may lag the file
// (the start-up scan catches up) but never covers bytes the file lacks.
//
// Not thread-safe: used by one transport instance, from one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace wep::ndjson {

class DeliveredIndex {
 public:
  struct State {
    uint64_t indexed_bytes = 0;  // bytes of the NDJSON file whose rows are in the index
    std::string first_event_id;  // of the file's first line ("" when empty)
  };

  // Opens `file` (nothing is created): null when there is no such file.
  // Throws wep::Error(WEP_ERR_INVALID_ARGUMENT) when it is not an index.
  static std::unique_ptr<DeliveredIndex> open_existing(const std::filesystem::path& file);
  // Creates a new, empty index at `file` (which must not exist).
  static std::unique_ptr<DeliveredIndex> create(const std::filesystem::path& file);

  DeliveredIndex(const DeliveredIndex&) = delete;
  DeliveredIndex& operator=(const DeliveredIndex&) = delete;
  ~DeliveredIndex();

  const State& state() const { return state_; }
  bool contains(std::string_view event_id);

  // A transaction: add() ids, then commit() the new state or roll_back().
  void begin();
  void add(std::string_view event_id);
  void commit(const State& state);
  void roll_back() noexcept;
  // Forgets every id (inside a transaction).
  void clear();

 private:
  DeliveredIndex(sqlite3* db, std::filesystem::path file);
  void prepare();
  void load_state();
  [[noreturn]] void fail(const std::string& what) const;

  sqlite3* db_ = nullptr;
  std::filesystem::path file_;
  sqlite3_stmt* contains_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  State state_;
};

}  // namespace wep::ndjson
