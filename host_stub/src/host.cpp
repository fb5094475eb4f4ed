// The host: stores, the WriteEffectCoordinator bus, effect lanes and plugins.
//
// Bus design: the WriteEffectCoordinator (WriteEffectBus) is a
// boost::signals2 signal owned by the host. Every slot on it is a host object
// (a thunk that pushes into one EffectLane); no slot is ever created by
// plugin code, so unloading a plugin cannot leave plugin code inside the bus.
// Publication (commit + emit) is serialised by bus_mutex, so every lane sees
// the same bus order, and disconnecting under bus_mutex guarantees no slot
// call is in flight.
#include <Poco/UUIDGenerator.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <host_stub/host.hpp>
#include <shared_mutex>
#include <system_error>
#include <wep/plugin_host.hpp>

#include "effect_lane.hpp"
#include "host_database.hpp"
#include "json_util.hpp"
#include "log.hpp"
#include "write_effect_bus.hpp"

namespace host_stub {
namespace {

static_assert(kMutationCommitted == WEP_EVENT_MUTATION_COMMITTED);
static_assert(kConnectivityChanged == WEP_EVENT_CONNECTIVITY_CHANGED);
static_assert(kSettingChanged == WEP_EVENT_SETTING_CHANGED);

constexpr size_t kMaxTypeBytes = 200;
constexpr size_t kMaxPayloadBytes = 1 << 20;
constexpr size_t kMaxSettingKeyBytes = 200;
constexpr auto kPendingPollInterval = std::chrono::milliseconds(10);

// Built-in settings and their defaults (JSON). Every other key is accepted
// as any JSON value.
const std::map<std::string, std::string, std::less<>>& default_settings() {
  static const std::map<std::string, std::string, std::less<>> defaults = {{"analytics_enabled", "true"}};
  return defaults;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A name made of [A-Za-z0-9._-], not "." or "..": safe as a folder name.
bool is_safe_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// Printable ASCII without whitespace (mutation types and setting keys are
// identifiers such as "note.created", never free text).
bool is_token(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

// Checks a setting value; the error names the key.
std::string checked_setting_value(std::string_view key, std::string_view value_json) {
  std::string error;
  auto compact = compact_json(value_json, false, error);
  if (!compact) throw HostError("setting '" + std::string(key) + "': " + error);
  if (key == "analytics_enabled" && *compact != "true" && *compact != "false")
    throw HostError("setting 'analytics_enabled': expected true or false, got " + *compact);
  return *compact;
}

void check_setting_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxSettingKeyBytes || !is_token(key))
    throw HostError("setting key " + json_quote(key.substr(0, 64)) + ": must be 1.." +
                    std::to_string(kMaxSettingKeyBytes) + " printable ASCII characters without spaces");
}

const char* level_name(int32_t level) {
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

// One host-side effect (built-in recorder or add_effect()).
struct HostEffect {
  std::string name;
  std::shared_ptr<EffectLane> lane;
  uint64_t connection = 0;  // on the bus
};

// The recorders standing in for the host's other effects: they count what
// they got. Thread-safe (atomics).
struct Recorder {
  std::atomic<uint64_t> mutations{0};
  std::atomic<int64_t> last_sequence{0};
};

}  // namespace

// What the host keeps per plugin. unload_plugin() disconnects its slot,
// drains and joins its lane, stops the instance, destroys it and releases
// the library; only then is this struct (holding the wep_host_api the plugin
// saw, valid until destroy() returned) freed.
struct LoadedPlugin {
  Host::Impl* host = nullptr;
  std::string name;
  std::string file;
  std::string config_json;
  std::string data_dir;  // NUL-terminated: wep_host_api.data_dir points here
  wep_host_api api{};
  std::shared_ptr<EffectLane> lane;
  uint64_t connection = 0;  // on the bus
  std::unique_ptr<wep::EffectPluginHandle> handle;
};

struct Host::Impl {
  HostOptions options;
  std::unique_ptr<HostDatabase> database;
  std::string pseudonymous_id;
  std::atomic<bool> online{false};

  mutable std::shared_mutex settings_mutex;
  std::map<std::string, std::string, std::less<>> persisted_settings;  // set_setting wins
  std::map<std::string, std::string, std::less<>> initial_settings;    // then the config

  // Serialises publication (commit + emit) and disconnection; see top of file.
  std::mutex bus_mutex;
  bool shut_down = false;  // guarded by bus_mutex
  WriteEffectBus bus;

  mutable std::mutex effects_mutex;  // guards host_effects (add_effect vs stats)
  std::vector<HostEffect> host_effects;
  std::map<std::string, std::shared_ptr<Recorder>> recorders;  // built in, fixed after construction

  // Built by the constructor, emptied by shutdown(); read in between.
  std::vector<std::unique_ptr<LoadedPlugin>> plugins;

  std::mutex wait_mutex;
  std::condition_variable wait_cv;  // wakes wait_delivered at shutdown
  bool waits_cancelled = false;

  explicit Impl(HostOptions host_options) : options(std::move(host_options)) {}
  ~Impl() { shutdown(); }

  void open_stores();
  void add_effect(const std::string& name, std::function<void(const HostEvent&)> handler, uint32_t event_kinds);
  void load_plugin(const PluginSpec& spec);
  void unload_plugin(LoadedPlugin& plugin);
  void publish(const HostEventPtr& event);  // caller holds bus_mutex
  std::optional<std::string> setting(std::string_view key) const;
  std::optional<int64_t> pending();
  void shutdown();
};

namespace {

// ---- the wep_host_api functions a plugin calls (noexcept: C boundary) ----

LoadedPlugin& plugin_of(void* ctx) { return *static_cast<LoadedPlugin*>(ctx); }

void api_log(void* ctx, int32_t level, const char* message, size_t size) noexcept {
  try {
    log_line("[" + plugin_of(ctx).name + "] " + level_name(level) + ": " + std::string(message ? message : "", size));
  } catch (...) {
  }
}

wep_status api_get_setting(void* ctx, wep_str key, wep_sink* value_json) noexcept {
  try {
    auto value = plugin_of(ctx).host->setting(wep::view(key));
    if (!value) return WEP_ERR_NOT_FOUND;
    wep::write(value_json, *value);
    return WEP_OK;
  } catch (...) {
    return WEP_ERR_FAILED;
  }
}

wep_status api_get_pseudonymous_id(void* ctx, wep_sink* out) noexcept {
  try {
    wep::write(out, plugin_of(ctx).host->pseudonymous_id);
    return WEP_OK;
  } catch (...) {
    return WEP_ERR_FAILED;
  }
}

wep_status api_subscribe(void* ctx, uint32_t event_kinds) noexcept {
  if ((event_kinds & ~kAllEvents) != 0) return WEP_ERR_INVALID_ARGUMENT;
  plugin_of(ctx).lane->set_event_kinds(event_kinds);
  return WEP_OK;
}

// The host-side thunk a plugin lane calls: HostEvent -> wep_event -> vtable.
void deliver_to_plugin(LoadedPlugin& plugin, const HostEvent& event) {
  wep_event raw{};
  raw.struct_size = sizeof(wep_event);
  raw.kind = event.kind;
  raw.mutation.sequence = event.sequence;
  raw.mutation.type = wep::str(event.type);
  raw.mutation.payload_json = wep::str(event.payload_json);
  raw.mutation.committed_at_ms = event.committed_at_ms;
  raw.connectivity.online = event.online ? 1 : 0;
  raw.connectivity.metered = 0;
  raw.setting.key = wep::str(event.setting_key);
  raw.setting.value_json = wep::str(event.setting_value_json);
  plugin.handle->on_event(raw);
}

}  // namespace

void Host::Impl::open_stores() {
  if (options.data_dir.empty()) throw HostError("data_dir: must not be empty");
  if (options.lane_capacity == 0) throw HostError("lane_capacity: must be >= 1");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) throw HostError("data_dir '" + options.data_dir.string() + "': cannot create: " + ec.message());
  database = std::make_unique<HostDatabase>(options.data_dir / "host.db");

  Poco::UUIDGenerator generator;  // local: no process-wide singleton
  pseudonymous_id = database->identity_or_store(generator.createRandom().toString());

  for (const auto& [key, value] : options.initial_settings_json) {
    check_setting_key(key);
    initial_settings[key] = checked_setting_value(key, value);
  }
  for (auto& [key, value] : database->load_settings()) persisted_settings[key] = std::move(value);
}

void Host::Impl::add_effect(const std::string& name, std::function<void(const HostEvent&)> handler,
                            uint32_t event_kinds) {
  if (name.empty()) throw HostError("effect name must not be empty");
  std::lock_guard effects_lock(effects_mutex);
  const bool taken =
      std::any_of(host_effects.begin(), host_effects.end(), [&](const HostEffect& e) { return e.name == name; }) ||
      std::any_of(plugins.begin(), plugins.end(), [&](const auto& p) { return p->name == name; });
  if (taken) throw HostError("effect '" + name + "' already exists");
  auto lane = std::make_shared<EffectLane>(name, options.lane_capacity, std::move(handler), event_kinds);
  std::lock_guard bus_lock(bus_mutex);
  if (shut_down) throw HostError("host is shut down");
  HostEffect effect{name, lane, bus.connect(*lane)};
  host_effects.push_back(std::move(effect));
}

void Host::Impl::load_plugin(const PluginSpec& spec) {
  std::string error;
  auto library = wep::PluginLibrary::open(spec.path, error);
  if (!library) throw HostError(error);
  const std::string name = library->name();
  if (!library->descriptor().effect) {
    throw HostError("plugin '" + spec.path + "' ('" + name +
                    "') is a transport plugin; the host loads only effect plugins (a transport is named in an "
                    "effect plugin's own config, e.g. analytics' transport.plugin)");
  }
  if (!is_safe_name(name))
    throw HostError("plugin '" + spec.path + "': its name '" + name + "' is not usable as a folder name");
  {
    std::lock_guard lock(effects_mutex);
    const bool taken =
        std::any_of(plugins.begin(), plugins.end(), [&](const auto& p) { return p->name == name; }) ||
        std::any_of(host_effects.begin(), host_effects.end(), [&](const HostEffect& e) { return e.name == name; });
    if (taken) throw HostError("plugin '" + spec.path + "': an effect named '" + name + "' is already loaded");
  }
  auto config = compact_json(spec.config_json, true, error);
  if (!config) throw HostError("plugin '" + spec.path + "': config: " + error);

  auto plugin = std::make_unique<LoadedPlugin>();
  plugin->host = this;
  plugin->name = name;
  plugin->file = spec.path;
  plugin->config_json = std::move(*config);
  const auto data_dir = options.data_dir / "plugins" / name;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) throw HostError("plugin '" + spec.path + "': cannot create its data dir '" + data_dir.string() + "'");
  plugin->data_dir = data_dir.string();
  plugin->api.struct_size = sizeof(wep_host_api);
  plugin->api.ctx = plugin.get();
  plugin->api.plugin_config_json = wep::str(plugin->config_json);
  plugin->api.data_dir = wep::str(plugin->data_dir);
  plugin->api.log = api_log;
  plugin->api.get_setting = api_get_setting;
  plugin->api.get_pseudonymous_id = api_get_pseudonymous_id;
  plugin->api.subscribe = api_subscribe;

  LoadedPlugin* raw = plugin.get();
  // Not subscribed to anything until the plugin calls subscribe().
  plugin->lane = std::make_shared<EffectLane>(
      name, options.lane_capacity, [raw](const HostEvent& event) { deliver_to_plugin(*raw, event); }, 0u);
  plugin->handle = std::make_unique<wep::EffectPluginHandle>(std::move(library));
  {
    std::lock_guard lock(effects_mutex);
    plugins.push_back(std::move(plugin));  // from here on, shutdown() unloads it
  }
  {
    std::lock_guard bus_lock(bus_mutex);
    raw->connection = bus.connect(*raw->lane);
  }
  if (!raw->handle->create(&raw->api, error))
    throw HostError("plugin '" + spec.path + "' ('" + name + "'): create failed: " + error);
  if (!raw->handle->start(error))
    throw HostError("plugin '" + spec.path + "' ('" + name + "') failed to start: " + error);
  log_line("[host] loaded plugin '" + name + "' " + raw->handle->library().descriptor().version + " from " + spec.path);
}

void Host::Impl::unload_plugin(LoadedPlugin& plugin) {
  {
    std::lock_guard bus_lock(bus_mutex);  // no emit in flight after this
    bus.disconnect(plugin.connection);
  }
  plugin.lane->close_and_join();  // everything accepted is handed to the plugin
  if (plugin.handle && plugin.handle->get()) {
    const wep_status status = plugin.handle->stop(options.plugin_stop_timeout_ms);
    if (status != WEP_OK) {
      log_line("[host] plugin '" + plugin.name + "' stop returned status " + std::to_string(status) +
               (status == WEP_ERR_TIMEOUT ? " (work abandoned at the timeout)" : ""));
    }
  }
  plugin.handle.reset();  // destroy(), then the library is released (unmapped if last)
}

void Host::Impl::publish(const HostEventPtr& event) { bus.emit(event); }

std::optional<std::string> Host::Impl::setting(std::string_view key) const {
  std::shared_lock lock(settings_mutex);
  if (auto it = persisted_settings.find(key); it != persisted_settings.end()) return it->second;
  if (auto it = initial_settings.find(key); it != initial_settings.end()) return it->second;
  if (auto it = default_settings().find(key); it != default_settings().end()) return it->second;
  return std::nullopt;
}

std::optional<int64_t> Host::Impl::pending() {
  // Barrier first for every lane, so every event published before the call
  // has reached its plugin; each plugin's pending_count then waits for its
  // own writer.
  for (auto& plugin : plugins) plugin->lane->wait_processed();
  std::optional<int64_t> total;
  for (auto& plugin : plugins) {
    if (!plugin->handle || !plugin->handle->get()) continue;
    int64_t count = 0;
    if (plugin->handle->pending_count(count) == WEP_OK) total = total.value_or(0) + count;
  }
  return total;
}

void Host::Impl::shutdown() {
  {
    std::lock_guard bus_lock(bus_mutex);
    if (shut_down) return;
    shut_down = true;
  }
  {
    std::lock_guard lock(wait_mutex);
    waits_cancelled = true;
  }
  wait_cv.notify_all();
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) unload_plugin(**it);
  {
    std::lock_guard lock(effects_mutex);
    plugins.clear();  // contexts last: their wep_host_api outlived destroy()
  }
  std::vector<HostEffect> effects;
  {
    std::lock_guard lock(effects_mutex);
    effects.swap(host_effects);
  }
  {
    std::lock_guard bus_lock(bus_mutex);
    for (auto& effect : effects) bus.disconnect(effect.connection);
  }
  for (auto& effect : effects) effect.lane->close_and_join();
  effects.clear();
  std::lock_guard bus_lock(bus_mutex);
  database.reset();
}

// ------------------------------------------------------------------- Host

Host::Host(HostOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  try {
    impl_->open_stores();
    for (const char* name : {"embedding_queue", "event_log", "sync_queue"}) {
      auto recorder = std::make_shared<Recorder>();
      impl_->recorders[name] = recorder;
      const uint32_t kinds = std::string_view(name) == "event_log" ? kAllEvents : kMutationCommitted;
      impl_->add_effect(
          name,
          [recorder](const HostEvent& event) {
            if (event.kind != kMutationCommitted) return;
            recorder->mutations.fetch_add(1, std::memory_order_relaxed);
            recorder->last_sequence.store(event.sequence, std::memory_order_relaxed);
          },
          kinds);
    }
    for (const auto& spec : impl_->options.plugins) impl_->load_plugin(spec);
  } catch (...) {
    impl_->shutdown();  // unloads what was loaded, in reverse order
    throw;
  }
}

Host::~Host() { shutdown(); }

void Host::shutdown() { impl_->shutdown(); }

int64_t Host::mutate(std::string_view type, std::string_view payload_json) {
  if (type.empty() || type.size() > kMaxTypeBytes || !is_token(type)) {
    throw HostError("mutation type " + json_quote(type.substr(0, 64)) + ": must be 1.." +
                    std::to_string(kMaxTypeBytes) + " printable ASCII characters without spaces");
  }
  if (payload_json.size() > kMaxPayloadBytes)
    throw HostError("mutation payload: larger than " + std::to_string(kMaxPayloadBytes) + " bytes");
  std::string error;
  auto payload = compact_json(payload_json, true, error);
  if (!payload) throw HostError("mutation payload: " + error);

  auto event = std::make_shared<HostEvent>();
  event->kind = kMutationCommitted;
  event->type = std::string(type);
  event->payload_json = std::move(*payload);

  std::lock_guard bus_lock(impl_->bus_mutex);
  if (impl_->shut_down) throw HostError("host is shut down");
  event->committed_at_ms = now_ms();
  event->sequence = impl_->database->append_event(event->type, event->payload_json, event->committed_at_ms);
  // Committed: from here on nothing an effect does changes the result.
  impl_->publish(event);
  return event->sequence;
}

void Host::set_online(bool online) {
  auto event = std::make_shared<HostEvent>();
  event->kind = kConnectivityChanged;
  event->online = online;
  std::lock_guard bus_lock(impl_->bus_mutex);
  if (impl_->shut_down) throw HostError("host is shut down");
  impl_->online.store(online);
  impl_->publish(event);
}

bool Host::is_online() const { return impl_->online.load(); }

void Host::set_setting(std::string_view key, std::string_view value_json) {
  check_setting_key(key);
  auto event = std::make_shared<HostEvent>();
  event->kind = kSettingChanged;
  event->setting_key = std::string(key);
  event->setting_value_json = checked_setting_value(key, value_json);

  std::lock_guard bus_lock(impl_->bus_mutex);
  if (impl_->shut_down) throw HostError("host is shut down");
  impl_->database->put_setting(event->setting_key, event->setting_value_json);
  {
    std::unique_lock lock(impl_->settings_mutex);
    impl_->persisted_settings[event->setting_key] = event->setting_value_json;
  }
  impl_->publish(event);
}

std::optional<std::string> Host::setting_json(std::string_view key) const { return impl_->setting(key); }

std::optional<int64_t> Host::pending() { return impl_->pending(); }

std::optional<int64_t> Host::wait_delivered(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto count = impl_->pending();
    if (!count || *count == 0) return count;
    // Waits on another thread's (or process') progress that has no event to
    // wait on here: poll, but wake at once on shutdown.
    std::unique_lock lock(impl_->wait_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || impl_->waits_cancelled) return count;
    impl_->wait_cv.wait_until(lock, std::min(deadline, now + kPendingPollInterval),
                              [&] { return impl_->waits_cancelled; });
  }
}

void Host::add_effect(const std::string& name, EffectHandler handler, uint32_t event_kinds) {
  if (!handler) throw HostError("effect '" + name + "': empty handler");
  impl_->add_effect(
      name, [handler = std::move(handler)](const HostEvent& event) { handler(event.view()); }, event_kinds);
}

void Host::flush_effects() {
  std::vector<std::shared_ptr<EffectLane>> lanes;
  {
    std::lock_guard lock(impl_->effects_mutex);
    for (auto& effect : impl_->host_effects) lanes.push_back(effect.lane);
    for (auto& plugin : impl_->plugins) lanes.push_back(plugin->lane);
  }
  for (auto& lane : lanes) lane->wait_processed();
}

bool Host::flush_effect(std::string_view name, std::chrono::milliseconds timeout) {
  std::shared_ptr<EffectLane> lane;
  {
    std::lock_guard lock(impl_->effects_mutex);
    for (auto& effect : impl_->host_effects)
      if (effect.name == name) lane = effect.lane;
    for (auto& plugin : impl_->plugins)
      if (plugin->name == name) lane = plugin->lane;
  }
  return lane && lane->wait_processed_for(timeout);
}

std::string Host::stats_json() {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  auto write_lane = [&](const std::string& name, const EffectLane& lane, const Recorder* recorder) {
    const LaneStats s = lane.stats();
    writer.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    writer.StartObject();
    writer.Key("delivered");
    writer.Uint64(s.delivered);
    writer.Key("failed");
    writer.Uint64(s.failed);
    writer.Key("dropped");
    writer.Uint64(s.dropped);
    writer.Key("queued");
    writer.Uint64(s.queued);
    writer.Key("max_handler_us");
    writer.Uint64(s.max_handler_us);
    if (!s.last_error.empty()) {
      writer.Key("last_error");
      writer.String(s.last_error.c_str(), static_cast<rapidjson::SizeType>(s.last_error.size()));
    }
    if (recorder) {
      writer.Key("mutations");
      writer.Uint64(recorder->mutations.load());
      writer.Key("last_sequence");
      writer.Int64(recorder->last_sequence.load());
    }
    writer.EndObject();
  };

  writer.StartObject();
  writer.Key("online");
  writer.Bool(is_online());
  std::lock_guard lock(impl_->effects_mutex);
  writer.Key("effects");
  writer.StartObject();
  for (const auto& effect : impl_->host_effects) {
    auto recorder = impl_->recorders.find(effect.name);
    write_lane(effect.name, *effect.lane, recorder == impl_->recorders.end() ? nullptr : recorder->second.get());
  }
  for (const auto& plugin : impl_->plugins) write_lane(plugin->name, *plugin->lane, nullptr);
  writer.EndObject();
  writer.Key("plugins");
  writer.StartObject();
  for (const auto& plugin : impl_->plugins) {
    if (!plugin->handle || !plugin->handle->get()) continue;
    std::string error;
    auto stats = compact_json(plugin->handle->stats_json(), false, error);
    if (!stats) stats = "{\"error\":" + json_quote("invalid stats JSON: " + error) + "}";
    writer.Key(plugin->name.c_str(), static_cast<rapidjson::SizeType>(plugin->name.size()));
    writer.RawValue(stats->c_str(), stats->size(), rapidjson::kObjectType);
  }
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string Host::pseudonymous_id() const { return impl_->pseudonymous_id; }

}  // namespace host_stub
