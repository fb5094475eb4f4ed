// host_stub: the harness host. An event-sourced host built on the host
// library (wep::host): its SQLite event log, identity and settings stores
// implement the services plugins see; three stand-in effects (embedding
// queue, event log, sync queue) count what they get; plugins load, unload
// and reload through wep::PluginManager. Scriptable through a line protocol
// (CommandInterpreter, the `host-stub` executable).
//
// Lean on purpose: no SQLite, Poco or RapidJSON here; the implementation
// lives behind a pimpl.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <wep/host/error.hpp>
#include <wep/host/event.hpp>
#include <wep/host/plugin_manager.hpp>

namespace wep::host_stub {

// One plugin to load: the file and its own config (a JSON object, given to the
// plugin verbatim as wep_host_api.plugin_config_json after re-serialisation).
struct PluginSpec {
  std::string path;
  std::string config_json = "{}";
};

struct HostOptions {
  // The host's data directory (event log, settings, identity, plugins/<name>/).
  // Created if missing.
  std::filesystem::path data_dir;
  // Initial user settings, key -> JSON value, e.g. {"analytics_enabled", "true"}.
  // Policy: a value persisted by set_setting() (in data_dir) wins; an initial
  // value applies only to keys never set, and is not persisted itself (edit
  // the config and restart: the new initial value applies). Unknown keys fall
  // back to built-in defaults (analytics_enabled: true).
  std::map<std::string, std::string> initial_settings_json;
  // Effect plugins, loaded and started in this order, stopped in reverse order.
  std::vector<PluginSpec> plugins;
  // Capacity of each effect's bounded lane (events). When a lane is full the
  // event is dropped for that effect only and counted as "dropped".
  size_t lane_capacity = 65536;
  // Passed to every plugin's stop() at unload, reload and shutdown.
  uint32_t plugin_stop_timeout_ms = 5000;
};

// Every error the host reports: bad options, bad input, a refused plugin. The
// message names the file, key or argument at fault.
using HostError = wep::HostError;

// Event kinds of the bus (the WEP_EVENT_* bits of wep/plugin_api.h).
using wep::kAllEvents;
using wep::kConnectivityChanged;
using wep::kMutationCommitted;
using wep::kSettingChanged;

// A bus event as a host-side effect sees it (valid during the handler call).
using EventView = wep::Event;

// A host-side effect: called on the effect's own lane thread, one event at a
// time, in bus order. May throw: the exception is caught and counted as
// "failed" for that effect only.
using EffectHandler = std::function<void(const EventView&)>;

// The host. Thread safety: mutate, set_online, set_setting, setting_json,
// pending, wait_delivered, stats_json, pseudonymous_id and is_online may be
// called concurrently from any threads. The constructor, shutdown and the
// destructor must not race with other calls.
class Host {
 public:
  // Opens the stores in options.data_dir, then loads and starts every plugin
  // in order. Throws HostError (naming the plugin file, or the store file) if
  // anything fails; plugins already started are then stopped and unloaded.
  // The host starts offline.
  explicit Host(HostOptions options);
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;
  // Calls shutdown().
  ~Host();

  // Appends the mutation to the event log and commits it, then publishes
  // mutation_committed on the bus. Returns the committed sequence number
  // (> 0, strictly increasing per data_dir), independent of every effect.
  // Throws HostError on bad input (type not 1..200 printable ASCII characters
  // without spaces; payload not a JSON object or over 1 MiB), on a storage
  // failure, or after shutdown. Callable from many threads at once; bus order
  // is sequence order.
  int64_t mutate(std::string_view type, std::string_view payload_json = "{}");

  // Sets connectivity and publishes connectivity_changed (even when unchanged).
  void set_online(bool online);
  bool is_online() const;

  // Validates value_json (any JSON value), persists it, then publishes
  // setting_changed. Throws HostError on an empty key or invalid JSON.
  void set_setting(std::string_view key, std::string_view value_json);
  // The setting's current value as compact JSON, or nullopt if unknown.
  std::optional<std::string> setting_json(std::string_view key) const;

  // Waits until every plugin lane has handed on everything published before
  // the call, then sums the plugins' pending_count answers. nullopt when no
  // plugin answers (none loaded, or all WEP_ERR_UNSUPPORTED).
  std::optional<int64_t> pending();
  // Calls pending() until it is 0 or `timeout` has passed; returns the last
  // answer (nullopt as for pending()).
  std::optional<int64_t> wait_delivered(std::chrono::milliseconds timeout);

  // Puts every plugin's dead-lettered rows back in its queue (the plugin
  // command "requeue_dead_letters", API 1.2); returns how many in all.
  // Throws HostError when a plugin that knows the command fails it.
  int64_t requeue_dead_letters();
  // The plugins' dead-lettered rows in all (plugin command "dead_letters");
  // nullopt when no plugin answers it.
  std::optional<int64_t> dead_letter_rows();

  // One line of JSON:
  // {"online":bool,"effects":{<name>:{"delivered":N,"failed":N,"dropped":N,
  //   "queued":N,"max_handler_us":N[,"last_error":"..."][,"mutations":N,
  //   "last_sequence":N]}},"plugins":{<plugin name>:<the plugin's stats>}}
  // ("mutations" and "last_sequence" for the three stand-in effects only).
  std::string stats_json();

  // The pseudonymous id (UUID v4) from the identity store; stable across
  // restarts with the same data_dir. Never an auth identifier.
  std::string pseudonymous_id() const;

  // Run-time plugin changes (wep::PluginManager; see its contracts).
  // load_plugin returns the plugin's name; all throw HostError naming the
  // file or plugin at fault, and the host goes on.
  std::string load_plugin(const std::string& path, std::string_view config_json = "{}");
  void unload_plugin(std::string_view name);
  void reload_plugin(std::string_view name, std::optional<std::string_view> config_json = std::nullopt);
  std::vector<wep::PluginInfo> plugins() const;
  // One line of JSON: [{"name","file","version","api":"1.0","state"}, ...]
  std::string plugins_json() const;

  // Adds a host-side effect with its own bounded lane, subscribed to
  // `event_kinds`. Its name appears in stats_json under "effects". Throws
  // HostError for a duplicate or empty name or after shutdown. The handler
  // lives until shutdown() and is never called after it. Thread-safe.
  void add_effect(const std::string& name, EffectHandler handler, uint32_t event_kinds = kAllEvents);

  // Lane barriers: wait until every effect (or the one named) has handled
  // everything it accepted before the call (dropped events do not count).
  // flush_effect returns false at the timeout or for an unknown name. Never
  // call them from an effect handler (a lane cannot wait for itself).
  void flush_effects();
  bool flush_effect(std::string_view name, std::chrono::milliseconds timeout);

  // Idempotent. Unloads every plugin in reverse load order (see
  // wep::PluginManager), then removes the host-side effects and closes the
  // stores. Later mutate() calls throw HostError.
  void shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Parses a host-stub config file: JSON validated against
// schemas/host_stub_config.schema.json (embedded in the binary). Relative
// data_dir and plugin paths are resolved against the config file's folder.
// Throws HostError whose message names the file and the wrong key, e.g.
// "config: /plugins/0/path: expected string".
HostOptions load_config_file(const std::filesystem::path& file);

// The same for config text already in memory; relative paths are resolved
// against base_dir.
HostOptions parse_config(std::string_view json_text, const std::filesystem::path& base_dir);

// The stdin command protocol (README): one line in, exactly one line out
// (without '\n'). Not thread-safe (one reader). Never throws for bad input:
// malformed lines answer "error: <why>".
class CommandInterpreter {
 public:
  explicit CommandInterpreter(Host& host);
  // Sets `quit` to true on "quit" (answer "bye"); leaves it alone otherwise.
  std::string execute(std::string_view line, bool& quit);
  // Thread-safe (call it from another thread, not a signal handler): makes a running
  // `sleep` or `wait-delivered` return at once (and later ones too). Used on
  // SIGTERM/SIGINT.
  void interrupt();

 private:
  bool wait_interruptible(std::chrono::milliseconds duration);

  Host& host_;
  std::mutex interrupt_mutex_;
  std::condition_variable interrupt_cv_;
  bool interrupted_ = false;
};

}  // namespace wep::host_stub
