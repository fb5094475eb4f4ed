// PluginManager: loads, starts, stops, reloads and unloads effect plugins
// (shared libraries speaking plugin_api.h, loaded with Boost.DLL) at run
// time, each on its own lane of a WriteEffectCoordinator.
//
// Unload order, which never leaves plugin code inside the bus: disconnect
// the plugin's lane from the bus, let the lane hand over everything it
// accepted, join the lane thread, stop(stop_timeout_ms) the instance (every
// plugin thread has ended when it returns), destroy it, then unmap the
// library. Reload keeps the lane connected and paused, so events published
// meanwhile wait in it (bounded; overflow dropped and counted) and reach the
// new instance in order; no publisher ever waits for a reload.
//
// Thread safety: every member may be called from any thread. Lifecycle calls
// (load, unload, reload, unload_all) are serialised; queries (plugins,
// pending, stats) run beside them and see a plugin that is being swapped as
// not answering.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <wep/host/error.hpp>
#include <wep/host/write_effect_coordinator.hpp>
#include <wep/host_services.hpp>

namespace wep {

enum class PluginState {
  kStarting,   // loaded, create/start under way
  kRunning,    // started, receiving events
  kReloading,  // being swapped; its events wait in its lane
  kStopping,   // being unloaded
};

// "starting", "running", "reloading", "stopping".
const char* plugin_state_name(PluginState state);

// A snapshot of one loaded plugin.
struct PluginInfo {
  std::string name;        // from the plugin's descriptor; also its effect name
  std::string file;        // the path it was loaded from
  std::string version;     // the plugin's own version
  uint16_t api_major = 0;  // the plugin API it was built against
  uint16_t api_minor = 0;
  PluginState state = PluginState::kStarting;
  std::string config_json;  // as given to the plugin
};

// One plugin's answer to stats: its JSON object, verbatim.
struct PluginStats {
  std::string name;
  std::string stats_json;
};

// One plugin's answer to a command (see PluginManager::control_all).
struct PluginControlAnswer {
  std::string name;         // the plugin's name
  wep_status status = 0;    // WEP_OK, or why the plugin refused
  std::string answer_json;  // its JSON answer on WEP_OK; otherwise the reason
};

class PluginManager {
 public:
  struct Options {
    // Each plugin gets <data_root>/<plugin name>/ as its data directory
    // (created when missing). Required.
    std::filesystem::path data_root;
    // Bound passed to a plugin's stop() at unload and reload.
    uint32_t stop_timeout_ms = 5000;
  };

  // `coordinator` and the objects `services` points to must outlive the
  // manager. Throws HostError for an empty data_root.
  PluginManager(WriteEffectCoordinator& coordinator, HostServices services, Options options);
  PluginManager(const PluginManager&) = delete;
  PluginManager& operator=(const PluginManager&) = delete;
  // Calls unload_all().
  ~PluginManager();

  // Loads the effect plugin at `path` with `config_json` (a JSON object, handed
  // to the plugin verbatim), creates and starts it, and, when the host is
  // online, tells it so (a plugin starts believing the host offline).
  // Returns its name. Throws HostError naming the
  // file (and both API versions on a version mismatch) when the library
  // cannot be loaded, is not an effect plugin, its name is taken or unsafe
  // as a folder name, or the plugin refuses to start (its reason, e.g. the
  // config key at fault); nothing stays loaded then.
  std::string load(const std::string& path, std::string config_json = "{}");

  // Unloads as described at the top. Throws HostError for an unknown name.
  // Returns false if the plugin's stop() had to abandon work at the timeout.
  bool unload(std::string_view name);

  // Stops and unloads the instance, maps the same file again and starts a new
  // instance with `config_json` (or the current config), on the same lane,
  // data directory and subscriptions; it is told "online" when that is what
  // the old instance last saw. If the new instance refuses to start, the previous
  // config is started again and HostError says why the new one was refused;
  // if that fails too, the plugin is unloaded and HostError says so.
  void reload(std::string_view name, std::optional<std::string> config_json = std::nullopt);

  // Unloads every plugin, last loaded first. Idempotent.
  void unload_all();

  // In load order.
  std::vector<PluginInfo> plugins() const;
  std::optional<PluginInfo> plugin(std::string_view name) const;

  // Waits until every plugin's lane has handed on everything published
  // before the call, then sums the plugins' pending counts. nullopt when no
  // plugin answers (none loaded, or none keeps a queue).
  std::optional<int64_t> pending();

  // Each running plugin's stats object, in load order.
  std::vector<PluginStats> stats();

  // Runs a plugin-defined command (plugin API 1.2, wep_effect_plugin_vtable
  // .control) on the running plugin `name` and returns its JSON answer, e.g.
  // control("analytics", "requeue_dead_letters") -> {"requeued":3}. Throws
  // HostError for an unknown name, a plugin not running (being reloaded), a
  // plugin older than 1.2, or a command it refuses (with its reason).
  std::string control(std::string_view name, std::string_view command, std::string_view argument_json = "{}");

  // Runs the command on every running plugin, in load order. Plugins that do
  // not know it (WEP_ERR_UNSUPPORTED, or older than 1.2) are left out.
  std::vector<PluginControlAnswer> control_all(std::string_view command, std::string_view argument_json = "{}");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep
