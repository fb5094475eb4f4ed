// HostDatabase: the host's own SQLite file <data_dir>/host.db
// (schemas/host_database.sql) holding the event log (the source of truth of
// an event-sourced host), the persisted user settings with their logged
// changes, and the identity (pseudonymous id).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <wep/host_services.hpp>

namespace wep::host_stub {

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

  // The event log as wep::EventLogSource reads it: mutations after
  // `after_sequence` and the setting changes made after mutation
  // after_sequence, in log order, copied out in chunks so that a long read
  // never holds up commits; and the newest sequence (0 when empty).
  void read_after(int64_t after_sequence, const std::function<bool(const wep::LoggedEvent&)>& visit) const;
  int64_t last_sequence() const;

  // Upserts a setting (value as compact JSON) and logs the change after the
  // newest mutation, in one transaction. Throws HostError.
  void put_setting(std::string_view key, std::string_view value_json, int64_t changed_at_ms);
  std::map<std::string, std::string> load_settings();

  // The stored pseudonymous id; stores `candidate` first if there is none
  // yet (atomically, even with two processes on one file).
  std::string identity_or_store(const std::string& candidate, int64_t created_at_ms);

  const std::filesystem::path& file() const { return file_; }

 private:
  struct Impl;  // the connection and its prepared statements
  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep::host_stub
