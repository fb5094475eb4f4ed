// The analytics plugin's config, parsed from the plugin's JSON config after
// validation against schemas/analytics_config.schema.json.
// Defaults are written next to each field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace wep::analytics {

struct EventMapping {
  std::string event_type;               // the pseudonymous event name stored
  std::vector<std::string> properties;  // the only payload keys kept
};

struct BackoffConfig {
  uint32_t initial_ms = 1000;  // first retry delay ceiling (full jitter)
  uint32_t max_ms = 300000;    // cap; also the delay after auth failures
};

struct TransportConfig {
  std::string plugin_path;  // absolute; a relative "plugin" is resolved against
                            // the folder of libwep_analytics.so itself (plugin
                            // files live together); empty: no flushing
                            // configured (no "transport" key)
  std::string config_json;  // the transport plugin's own config object
  uint32_t stop_timeout_ms = 5000;
};

struct AnalyticsConfig {
  std::string database_path;                 // "database", default "analytics.db",
                                             // relative to the plugin's data dir
  uint32_t batch_size = 500;                 // rows per request
  uint32_t batch_max_bytes = 1048576;        // byte cap per request body
  uint32_t flush_interval_ms = 5000;         // send new rows this often when online
  int64_t max_queue_rows = 1000000;          // cap; the oldest rows are dropped past it
  uint32_t retention_days = 30;              // rows older than this age out
  uint32_t buffer_capacity = 65536;          // hand-off buffer, events
  int64_t max_database_bytes = 0;            // PRAGMA max_page_count cap; 0 = none
  uint32_t maintenance_interval_ms = 60000;  // age-out period
  uint32_t busy_timeout_ms = 5000;           // SQLite busy timeout
  BackoffConfig backoff;
  std::map<std::string, EventMapping, std::less<>> events;  // mutation type -> mapping
  TransportConfig transport;
};

// Validates `json` against schemas/analytics_config.schema.json (embedded)
// and fills a config. `data_dir` resolves a relative "database";
// `plugin_dir` (the folder of the analytics plugin file) resolves a relative
// "transport.plugin" -- when it is empty, a relative transport path is
// refused. Throws wep::Error(WEP_ERR_INVALID_ARGUMENT, "analytics config:
// <JSON pointer>: <why>") naming the offending key.
AnalyticsConfig parse_config(std::string_view json, std::string_view data_dir, std::string_view plugin_dir = {});

}  // namespace wep::analytics
