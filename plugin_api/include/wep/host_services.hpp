// The services a host application gives its plugins, as small C++
// interfaces the host implements. wep::HostApiTable (host_api_table.hpp)
// turns them into the C table a plugin sees (wep_host_api).
//
// Every interface here must be thread-safe: plugins call them from their own
// threads, at any time between create() and the end of stop(). None may
// throw across the plugin boundary; HostApiTable catches what they throw and
// answers WEP_ERR_FAILED.
#pragma once

#include <wep/plugin_api.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace wep {

// User settings. Change notification is the host publishing
// setting_changed on its WriteEffectCoordinator after the change is stored.
class SettingsSource {
 public:
  virtual ~SettingsSource() = default;
  // The current value of `key` as JSON text (e.g. "true"), or nullopt when
  // the host does not know the key.
  virtual std::optional<std::string> setting_json(std::string_view key) const = 0;
};

// The user's pseudonymous identity: stable across restarts, never an auth
// identifier. Identity, auth and analytics are separate concerns: there is
// deliberately no way to hand a plugin an auth token.
class IdentitySource {
 public:
  virtual ~IdentitySource() = default;
  // The pseudonymous id, or nullopt when the host has none.
  virtual std::optional<std::string> pseudonymous_id() const = 0;
};

// One entry of the host's event log: a committed mutation, or a setting
// change when the host logs those (see wep_host_api.read_event_log). Views
// are valid only during the visitor call.
struct LoggedEvent {
  uint32_t kind = WEP_EVENT_MUTATION_COMMITTED;  // or WEP_EVENT_SETTING_CHANGED
  // The mutation's sequence (> 0, strictly increasing); for a setting
  // change, the sequence of the last mutation committed before it.
  int64_t sequence = 0;
  std::string_view type;  // mutation
  std::string_view payload_json;
  int64_t committed_at_ms = 0;
  std::string_view setting_key;  // setting change
  std::string_view setting_value_json;
};

// The host's durable event log (an event-sourced host has one). A host
// without a log passes none (HostServices::event_log == nullptr) and plugins
// are told WEP_ERR_UNSUPPORTED.
class EventLogSource {
 public:
  virtual ~EventLogSource() = default;
  // Calls `visit` for every logged event after `after_sequence`, in log
  // order, until `visit` returns false or the log ends: the mutations with
  // sequence > after_sequence and, if the host logs them, the setting
  // changes made after mutation after_sequence. Streams: it never loads the
  // range into memory. Must not block commits for long (read from a
  // snapshot or in short steps).
  virtual void read_after(int64_t after_sequence, const std::function<bool(const LoggedEvent&)>& visit) const = 0;
  // The sequence of the newest committed mutation, 0 for an empty log.
  virtual int64_t last_sequence() const = 0;
};

// Receives every log line of a plugin: level (WEP_LOG_*), the plugin's name,
// the message. Must be thread-safe and must not throw.
using LogFunction = std::function<void(int32_t level, std::string_view plugin, std::string_view message)>;

// What a host offers. The pointers are borrowed: each object must outlive
// every plugin created with these services. A null member means "this host
// has none".
struct HostServices {
  LogFunction log;                            // null: plugin logs are dropped
  const SettingsSource* settings = nullptr;   // null: every key is unknown
  const IdentitySource* identity = nullptr;   // null: no pseudonymous id
  const EventLogSource* event_log = nullptr;  // null: no event log
};

// Names for WEP_LOG_* levels ("debug", "info", "warn", "error").
inline const char* log_level_name(int32_t level) {
  switch (level) {
    case WEP_LOG_DEBUG:
      return "debug";
    case WEP_LOG_INFO:
      return "info";
    case WEP_LOG_WARN:
      return "warn";
    case WEP_LOG_ERROR:
      return "error";
    default:
      return "log";
  }
}

}  // namespace wep
