// Shared helpers of the delivery tests: temporary folders, the analytics
// plugin's config, its stats as seen through the host stub, the queue and
// dead-letter tables read straight from the SQLite file, and waiting on a
// condition with a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <wep/host_stub/host.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <wep/test/temp_dir.hpp>

namespace wep::test {

using wep::test::TempDir;

// The analytics plugin's config. Mutation "note.created" maps to event type
// "note_created" and "poison.made" to "poison"; both keep properties "n"
// (a unique counter identifying each mutation) and "blob".
struct AnalyticsOptions {
  std::string transport_plugin;  // absolute path
  std::string transport_config_json = "{}";
  uint32_t batch_size = 50;
  uint32_t batch_max_bytes = 1048576;
  uint32_t flush_interval_ms = 20;
  uint32_t backoff_initial_ms = 10;
  uint32_t backoff_max_ms = 200;
  uint32_t transport_stop_timeout_ms = 2000;
  std::string database;  // the queue file; empty: the plugin's default (analytics.db in its data dir)
};
std::string analytics_config_json(const AnalyticsOptions& options);

// The supabase transport's config (ca_file: the CA the client trusts).
std::string supabase_config_json(const std::string& url, const std::string& api_key, const std::string& ca_file,
                                 uint32_t timeout_ms = 2000, const std::string& table = "analytics_events");

// A host-stub config file's text: `data_dir` and the analytics plugin
// (`analytics_plugin`, an absolute path) with `options`.
std::string host_stub_config_json(const std::filesystem::path& data_dir, const std::string& analytics_plugin,
                                  const AnalyticsOptions& options);

// Host options with the analytics plugin (ANALYTICS path) in `data_dir`.
wep::host_stub::HostOptions host_options(const std::filesystem::path& data_dir, const std::string& analytics_plugin,
                                    const AnalyticsOptions& options);

// {"n":<n>} or {"n":<n>,"blob":"<blob>"}: payload of the n-th mutation.
std::string payload(int64_t n, const std::string& blob = "");

// The "n" of a row's properties (JSON text), or -1.
int64_t n_of(const std::string& properties_json);

// A counter from the analytics plugin's stats (host.stats_json()), or -1.
int64_t stat(wep::host_stub::Host& host, const std::string& name);
std::string stat_text(wep::host_stub::Host& host, const std::string& name);

// Paths of the plugin's files under a host data dir.
std::filesystem::path analytics_db(const std::filesystem::path& data_dir);
std::filesystem::path transport_dir(const std::filesystem::path& data_dir);

// Rows read from the analytics SQLite file (opened read-only by the test).
struct DeadLetter {
  std::string event_type;
  std::string properties;
  std::string reason;
};
int64_t queue_rows(const std::filesystem::path& db);
std::vector<int64_t> queued_ns(const std::filesystem::path& db);  // the "n" of every queued row, oldest first
std::vector<DeadLetter> dead_letters(const std::filesystem::path& db);

// Polls `condition` until it holds or `timeout` passes; true if it held.
// Used where the condition is another thread's or process's progress that
// offers nothing to block on.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Lines of a text file (empty if it does not exist).
std::vector<std::string> read_lines(const std::filesystem::path& file);

}  // namespace wep::test
