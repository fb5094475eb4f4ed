#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <wep/host/plugin_manager.hpp>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>

namespace wep {
namespace {

// A name made of [A-Za-z0-9._-], not "." or "..": safe as a folder name.
bool is_safe_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

wep_event raw_event(const Event& event) {
  wep_event raw{};
  raw.struct_size = sizeof(wep_event);
  raw.kind = event.kind;
  raw.mutation.sequence = event.sequence;
  raw.mutation.type = str(event.type);
  raw.mutation.payload_json = str(event.payload_json);
  raw.mutation.committed_at_ms = event.committed_at_ms;
  raw.connectivity.online = event.online ? 1 : 0;
  raw.connectivity.metered = event.metered ? 1 : 0;
  raw.setting.key = str(event.setting_key);
  raw.setting.value_json = str(event.setting_value_json);
  return raw;
}

}  // namespace

const char* plugin_state_name(PluginState state) {
  switch (state) {
    case PluginState::kStarting:
      return "starting";
    case PluginState::kRunning:
      return "running";
    case PluginState::kReloading:
      return "reloading";
    case PluginState::kStopping:
      return "stopping";
  }
  return "unknown";
}

// One loaded plugin. `instance_mutex` is held exclusively by lifecycle
// steps that create or destroy the instance, and tried (never waited for)
// by queries, so a query never waits for a plugin's stop(). The lane thread
// reads `handle` without it: the manager only replaces the instance while
// the lane is paused (or after it was closed), and pausing orders the two.
// `info_mutex` guards the descriptive fields.
struct Slot {
  std::string name;
  std::string data_dir;

  mutable std::mutex info_mutex;
  PluginInfo info;

  mutable std::shared_mutex instance_mutex;
  std::unique_ptr<HostApiTable> api;  // outlives the instance
  std::unique_ptr<EffectPluginHandle> handle;

  void set_state(PluginState state) {
    std::lock_guard lock(info_mutex);
    info.state = state;
  }
  PluginInfo snapshot() const {
    std::lock_guard lock(info_mutex);
    return info;
  }

  // What the current instance subscribed to (the lane thread filters by
  // it), and whether subscribe() calls must leave the lane's filter alone
  // (during reload the lane keeps accepting what the old instance wanted).
  std::atomic<uint32_t> subscription{0};
  std::atomic<bool> swapping{false};

  // Lane thread only (or the manager while the lane is paused): the last
  // connectivity event delivered, told again to a reloaded instance.
  std::optional<Event> last_connectivity;

  void deliver(const Event& event) {
    if (event.kind == kConnectivityChanged) last_connectivity = event;
    if ((event.kind & subscription.load()) == 0) return;
    if (!handle || !handle->get()) return;
    const wep_event raw = raw_event(event);
    handle->on_event(raw);
  }
};

struct PluginManager::Impl {
  WriteEffectCoordinator& coordinator;
  HostServices services;
  Options options;

  std::mutex lifecycle_mutex;  // serialises load, unload, reload
  mutable std::mutex slots_mutex;
  std::vector<std::shared_ptr<Slot>> slots;  // load order

  Impl(WriteEffectCoordinator& c, HostServices s, Options o)
      : coordinator(c), services(std::move(s)), options(std::move(o)) {}

  void log(int32_t level, const std::string& message) const {
    if (services.log) services.log(level, "host", message);
  }

  std::shared_ptr<Slot> find(std::string_view name) const {
    std::lock_guard lock(slots_mutex);
    for (const auto& slot : slots)
      if (slot->name == name) return slot;
    return nullptr;
  }

  std::vector<std::shared_ptr<Slot>> snapshot() const {
    std::lock_guard lock(slots_mutex);
    return slots;
  }

  void forget(const std::shared_ptr<Slot>& slot) {
    std::lock_guard lock(slots_mutex);
    slots.erase(std::remove(slots.begin(), slots.end(), slot), slots.end());
  }

  // Opens `path` and checks that it is an effect plugin.
  std::shared_ptr<const PluginLibrary> open_library(const std::string& path) const {
    std::string error;
    auto library = PluginLibrary::open(path, error);
    if (!library) throw HostError(error);
    if (!library->descriptor().effect) {
      throw HostError("plugin '" + path + "' ('" + library->name() +
                      "') is a transport plugin; the host loads only effect plugins (a transport is named in an "
                      "effect plugin's own config, e.g. analytics' transport.plugin)");
    }
    return library;
  }

  // Creates and starts an instance of `library` in `slot` with `config_json`
  // (instance_mutex held exclusively by the caller). On failure the
  // instance is stopped and destroyed, the library released, and HostError
  // thrown.
  void start_instance(Slot& slot, std::shared_ptr<const PluginLibrary> library, const std::string& config_json) {
    const auto& descriptor = library->descriptor();
    {
      std::lock_guard lock(slot.info_mutex);
      slot.info.name = slot.name;
      slot.info.file = library->path();
      slot.info.version = descriptor.version ? descriptor.version : "";
      slot.info.api_major = descriptor.api_major;
      slot.info.api_minor = descriptor.api_minor;
      slot.info.config_json = config_json;
    }
    slot.subscription.store(0);
    Slot* raw = &slot;
    WriteEffectCoordinator* bus = &coordinator;
    slot.api = std::make_unique<HostApiTable>(slot.name, config_json, slot.data_dir, services,
                                              [raw, bus](uint32_t kinds) -> wep_status {
                                                raw->subscription.store(kinds & kAllEvents);
                                                if (!raw->swapping.load()) bus->set_event_kinds(raw->name, kinds);
                                                return WEP_OK;
                                              });
    slot.handle = std::make_unique<EffectPluginHandle>(std::move(library));
    std::string error;
    const std::string who = "plugin '" + slot.handle->library().path() + "' ('" + slot.name + "')";
    if (!slot.handle->create(slot.api->get(), error)) {
      slot.handle.reset();
      throw HostError(who + ": create failed: " + error);
    }
    if (!slot.handle->start(error)) {
      // The plugin may have subscribed before it failed: hold its lane (a
      // no-op during a reload) so no on_event runs while it is torn down.
      coordinator.pause_effect(slot.name);
      slot.handle->stop(options.stop_timeout_ms);  // the contract: stop and destroy also after a failed start
      slot.handle.reset();
      throw HostError(who + " failed to start: " + error);
    }
  }

  // Stops and destroys the instance, then releases its library (unmapped
  // when nothing else holds it). instance_mutex held exclusively by the
  // caller.
  bool stop_instance(Slot& slot) {
    bool in_time = true;
    if (slot.handle && slot.handle->get()) {
      const wep_status status = slot.handle->stop(options.stop_timeout_ms);
      if (status != WEP_OK) {
        in_time = false;
        log(WEP_LOG_WARN, "plugin '" + slot.name + "' stop returned status " + std::to_string(status) +
                              (status == WEP_ERR_TIMEOUT ? " (work abandoned at the timeout)" : ""));
      }
    }
    slot.handle.reset();  // destroy(), then the library is released
    return in_time;
  }

  bool unload(const std::shared_ptr<Slot>& slot) {
    slot->set_state(PluginState::kStopping);
    coordinator.remove_effect(slot->name);  // disconnect, drain into the plugin, join
    bool in_time;
    {
      std::unique_lock lock(slot->instance_mutex);
      in_time = stop_instance(*slot);
      slot->api.reset();
    }
    forget(slot);
    log(WEP_LOG_INFO, "unloaded plugin '" + slot->name + "'");
    return in_time;
  }
};

PluginManager::PluginManager(WriteEffectCoordinator& coordinator, HostServices services, Options options)
    : impl_(std::make_unique<Impl>(coordinator, std::move(services), std::move(options))) {
  if (impl_->options.data_root.empty()) throw HostError("plugin data_root must not be empty");
}

PluginManager::~PluginManager() { unload_all(); }

std::string PluginManager::load(const std::string& path, std::string config_json) {
  std::lock_guard lifecycle(impl_->lifecycle_mutex);
  auto library = impl_->open_library(path);
  const std::string name = library->name();
  if (!is_safe_name(name))
    throw HostError("plugin '" + path + "': its name '" + name + "' is not usable as a folder name");
  if (impl_->find(name) || impl_->coordinator.has_effect(name))
    throw HostError("plugin '" + path + "': an effect named '" + name + "' is already loaded");

  auto slot = std::make_shared<Slot>();
  slot->name = name;
  const auto data_dir = impl_->options.data_root / name;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    throw HostError("plugin '" + path + "': cannot create its data dir '" + data_dir.string() + "': " + ec.message());
  slot->data_dir = data_dir.string();

  // The lane exists (accepting nothing) before the instance, so the plugin
  // can subscribe from start().
  Slot* raw = slot.get();
  impl_->coordinator.add_effect(
      name, [raw](const Event& event) { raw->deliver(event); }, 0u);
  {
    std::lock_guard lock(impl_->slots_mutex);
    impl_->slots.push_back(slot);
  }
  try {
    std::unique_lock lock(slot->instance_mutex);
    impl_->start_instance(*slot, std::move(library), config_json);
  } catch (...) {
    impl_->coordinator.remove_effect(name);
    {
      std::unique_lock lock(slot->instance_mutex);
      slot->api.reset();
    }
    impl_->forget(slot);
    throw;
  }
  slot->set_state(PluginState::kRunning);
  // A plugin starts believing the host offline: tell it when it is not.
  if (impl_->coordinator.online()) impl_->coordinator.replay_connectivity(name);
  impl_->log(WEP_LOG_INFO, "loaded plugin '" + name + "' " + slot->snapshot().version + " from " + path);
  return name;
}

bool PluginManager::unload(std::string_view name) {
  std::lock_guard lifecycle(impl_->lifecycle_mutex);
  auto slot = impl_->find(name);
  if (!slot) throw HostError("no plugin named '" + std::string(name) + "' is loaded");
  return impl_->unload(slot);
}

void PluginManager::reload(std::string_view name, std::optional<std::string> config_json) {
  std::lock_guard lifecycle(impl_->lifecycle_mutex);
  auto slot = impl_->find(name);
  if (!slot) throw HostError("no plugin named '" + std::string(name) + "' is loaded");
  WriteEffectCoordinator& bus = impl_->coordinator;

  // Events published from here on wait in the lane.
  slot->swapping.store(true);
  bus.pause_effect(slot->name);
  slot->set_state(PluginState::kReloading);
  const PluginInfo before = slot->snapshot();
  const std::string& file = before.file;
  const std::string& previous_config = before.config_json;
  {
    std::unique_lock lock(slot->instance_mutex);
    impl_->stop_instance(*slot);
    slot->api.reset();
  }

  auto start_with = [&](const std::string& config) {
    auto library = impl_->open_library(file);
    if (library->name() != slot->name) {
      throw HostError("plugin '" + file + "' is now named '" + library->name() + "', not '" + slot->name + "'");
    }
    std::unique_lock lock(slot->instance_mutex);
    try {
      impl_->start_instance(*slot, std::move(library), config);
    } catch (...) {
      slot->api.reset();
      throw;
    }
  };
  auto resume = [&] {
    // The new instance learns the connectivity the old one last saw; later
    // changes are queued in the lane behind it.
    {
      std::unique_lock lock(slot->instance_mutex);
      if (slot->last_connectivity && slot->last_connectivity->online &&
          (slot->subscription.load() & kConnectivityChanged) && slot->handle) {
        const wep_event raw = raw_event(*slot->last_connectivity);
        slot->handle->on_event(raw);
      }
    }
    slot->set_state(PluginState::kRunning);
    bus.set_event_kinds(slot->name, slot->subscription.load());
    slot->swapping.store(false);
    bus.resume_effect(slot->name);
  };

  const std::string new_config = config_json ? *config_json : previous_config;
  try {
    start_with(new_config);
  } catch (const std::exception& refused) {  // HostError, or e.g. out of memory
    try {
      start_with(previous_config);
    } catch (const std::exception& again) {
      slot->swapping.store(false);
      impl_->unload(slot);
      throw HostError(std::string(refused.what()) + "; restarting the previous config failed too (" + again.what() +
                      "), so the plugin was unloaded");
    }
    resume();
    impl_->log(WEP_LOG_WARN, "reload of plugin '" + slot->name + "' refused; the previous config is running again");
    throw HostError(std::string(refused.what()) + "; the previous config is running again");
  }
  resume();
  impl_->log(WEP_LOG_INFO, "reloaded plugin '" + slot->name + "' from " + file);
}

void PluginManager::unload_all() {
  std::lock_guard lifecycle(impl_->lifecycle_mutex);
  auto slots = impl_->snapshot();
  for (auto it = slots.rbegin(); it != slots.rend(); ++it) impl_->unload(*it);
}

std::vector<PluginInfo> PluginManager::plugins() const {
  std::vector<PluginInfo> all;
  for (const auto& slot : impl_->snapshot()) all.push_back(slot->snapshot());
  return all;
}

std::optional<PluginInfo> PluginManager::plugin(std::string_view name) const {
  auto slot = impl_->find(name);
  if (!slot) return std::nullopt;
  return slot->snapshot();
}

std::optional<int64_t> PluginManager::pending() {
  const auto slots = impl_->snapshot();
  // Barrier first for every lane, so every event published before the call
  // has reached its plugin; each plugin's pending_count then waits for its
  // own writer.
  for (const auto& slot : slots) impl_->coordinator.flush_effect(slot->name);
  std::optional<int64_t> total;
  for (const auto& slot : slots) {
    std::shared_lock lock(slot->instance_mutex, std::try_to_lock);
    if (!lock.owns_lock() || slot->snapshot().state != PluginState::kRunning || !slot->handle || !slot->handle->get())
      continue;
    int64_t count = 0;
    if (slot->handle->pending_count(count) == WEP_OK) total = total.value_or(0) + count;
  }
  return total;
}

std::vector<PluginStats> PluginManager::stats() {
  std::vector<PluginStats> all;
  for (const auto& slot : impl_->snapshot()) {
    std::shared_lock lock(slot->instance_mutex, std::try_to_lock);
    if (!lock.owns_lock() || slot->snapshot().state != PluginState::kRunning || !slot->handle || !slot->handle->get())
      continue;
    all.push_back({slot->name, slot->handle->stats_json()});
  }
  return all;
}

std::string PluginManager::control(std::string_view name, std::string_view command, std::string_view argument_json) {
  auto slot = impl_->find(name);
  if (!slot) throw HostError("no plugin named '" + std::string(name) + "' is loaded");
  std::shared_lock lock(slot->instance_mutex, std::try_to_lock);
  if (!lock.owns_lock() || slot->snapshot().state != PluginState::kRunning || !slot->handle || !slot->handle->get())
    throw HostError("plugin '" + std::string(name) + "' is not running");
  std::string answer;
  if (slot->handle->control(command, argument_json, answer) != WEP_OK)
    throw HostError("plugin '" + std::string(name) + "' refused '" + std::string(command) + "': " + answer);
  return answer;
}

std::vector<PluginControlAnswer> PluginManager::control_all(std::string_view command, std::string_view argument_json) {
  std::vector<PluginControlAnswer> all;
  for (const auto& slot : impl_->snapshot()) {
    std::shared_lock lock(slot->instance_mutex, std::try_to_lock);
    if (!lock.owns_lock() || slot->snapshot().state != PluginState::kRunning || !slot->handle || !slot->handle->get())
      continue;
    PluginControlAnswer one;
    one.name = slot->name;
    one.status = slot->handle->control(command, argument_json, one.answer_json);
    if (one.status == WEP_ERR_UNSUPPORTED) continue;
    all.push_back(std::move(one));
  }
  return all;
}

}  // namespace wep
