// HostDatabase: the host's own SQLite file <data_dir>/host.db holding the
// event log (the source of truth of an event-sourced host), the persisted user
// settings and the identity (pseudonymous id).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace host_stub {

// Thread safety: every method may be called from any thread; calls are
// serialised on one connection by an internal mutex.
class HostDatabase {
 public:
  // Opens (creating if needed) and migrates the file. Throws HostError naming
  // the file on failure, or when the file was written by a newer host.
  explicit HostDatabase(const std::filesystem::path& file);
  HostDatabase(const HostDatabase&) = delete;
  HostDatabase& operator=(const HostDatabase&) = delete;
  ~HostDatabase();

  // Appends one mutation and commits it. Returns its sequence (> 0, strictly
  // increasing: rows are never deleted). Throws HostError on failure.
  int64_t append_event(std::string_view type, std::string_view payload_json, int64_t committed_at_ms);

  int64_t event_count();

  // Upserts a setting (value as compact JSON) and commits. Throws HostError.
  void put_setting(std::string_view key, std::string_view value_json);
  std::map<std::string, std::string> load_settings();

  // The stored pseudonymous id; stores `candidate` first if there is none
  // yet (atomically, even with two processes on one file).
  std::string identity_or_store(const std::string& candidate);

  const std::filesystem::path& file() const { return file_; }

 private:
  void exec(const char* sql);
  [[noreturn]] void fail(std::string_view what) const;
  void migrate();

  std::filesystem::path file_;
  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_event_ = nullptr;
  sqlite3_stmt* upsert_setting_ = nullptr;
};

}  // namespace host_stub
