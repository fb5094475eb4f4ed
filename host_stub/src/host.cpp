// The harness host on top of the host library: the SQLite stores implement
// the services plugins see, the stand-in effects count what they get, and
// wep::WriteEffectCoordinator / wep::PluginManager do the rest.
#include <Poco/UUIDGenerator.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <wep/host_stub/host.hpp>
#include <shared_mutex>
#include <system_error>
#include <wep/host/write_effect_coordinator.hpp>

#include "host_database.hpp"
#include "json_util.hpp"
#include "log.hpp"

namespace wep::host_stub {
namespace {

constexpr size_t kMaxTypeBytes = 200;
constexpr size_t kMaxPayloadBytes = 1 << 20;
constexpr size_t kMaxSettingKeyBytes = 200;
constexpr auto kPendingPollInterval = std::chrono::milliseconds(10);

// The stand-in effects of an event-sourced host, in the order they are added.
constexpr const char* kStandInEffects[] = {"embedding_queue", "event_log", "sync_queue"};

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

// The config a plugin is handed: a JSON object, compact.
std::string checked_plugin_config(std::string_view path_or_name, std::string_view config_json) {
  std::string error;
  auto config = compact_json(config_json, true, error);
  if (!config) throw HostError("plugin '" + std::string(path_or_name) + "': config: " + error);
  return *config;
}

// A stand-in effect counts the mutations it got. Thread-safe (atomics).
struct Recorder {
  std::atomic<uint64_t> mutations{0};
  std::atomic<int64_t> last_sequence{0};
};

// Settings: persisted values (set_setting) win over the config's initial
// values, which win over built-in defaults. Thread-safe.
class SettingsStore final : public wep::SettingsSource {
 public:
  std::optional<std::string> setting_json(std::string_view key) const override {
    std::shared_lock lock(mutex_);
    if (auto it = persisted_.find(key); it != persisted_.end()) return it->second;
    if (auto it = initial_.find(key); it != initial_.end()) return it->second;
    if (auto it = default_settings().find(key); it != default_settings().end()) return it->second;
    return std::nullopt;
  }
  void set_initial(const std::string& key, std::string value) {
    std::unique_lock lock(mutex_);
    initial_[key] = std::move(value);
  }
  void set_persisted(const std::string& key, std::string value) {
    std::unique_lock lock(mutex_);
    persisted_[key] = std::move(value);
  }

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::string, std::less<>> persisted_;
  std::map<std::string, std::string, std::less<>> initial_;
};

class IdentityStore final : public wep::IdentitySource {
 public:
  std::optional<std::string> pseudonymous_id() const override { return id; }
  std::string id;  // set once, before any plugin exists
};

// The harness's event log as plugins read it (read-only).
class EventLog final : public wep::EventLogSource {
 public:
  explicit EventLog(const HostDatabase& database) : database_(database) {}
  void read_after(int64_t after_sequence, const std::function<bool(const wep::LoggedEvent&)>& visit) const override {
    database_.read_after(after_sequence, visit);
  }
  int64_t last_sequence() const override { return database_.last_sequence(); }

 private:
  const HostDatabase& database_;
};

void log_plugin_line(int32_t level, std::string_view plugin, std::string_view message) {
  log_line("[" + std::string(plugin) + "] " + wep::log_level_name(level) + ": " + std::string(message));
}

}  // namespace

// Members are declared in construction order and destroyed in reverse:
// plugins go before the coordinator, which goes before the stores the
// services point to.
struct Host::Impl {
  HostOptions options;
  std::unique_ptr<HostDatabase> database;
  SettingsStore settings;
  IdentityStore identity;
  std::unique_ptr<EventLog> event_log;
  std::map<std::string, std::shared_ptr<Recorder>, std::less<>> recorders;  // fixed after construction
  std::unique_ptr<wep::WriteEffectCoordinator> coordinator;
  std::unique_ptr<wep::PluginManager> plugins;

  std::mutex shutdown_mutex;
  bool shut_down = false;

  std::mutex wait_mutex;
  std::condition_variable wait_cv;  // wakes wait_delivered at shutdown
  bool waits_cancelled = false;

  explicit Impl(HostOptions host_options) : options(std::move(host_options)) {}
  ~Impl() { shutdown(); }

  void open_stores();
  void shutdown();
};

void Host::Impl::open_stores() {
  if (options.data_dir.empty()) throw HostError("data_dir: must not be empty");
  if (options.lane_capacity == 0) throw HostError("lane_capacity: must be >= 1");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) throw HostError("data_dir '" + options.data_dir.string() + "': cannot create: " + ec.message());
  database = std::make_unique<HostDatabase>(options.data_dir / "host.db");
  event_log = std::make_unique<EventLog>(*database);

  Poco::UUIDGenerator generator;  // local: no process-wide singleton
  identity.id = database->identity_or_store(generator.createRandom().toString(), now_ms());

  for (const auto& [key, value] : options.initial_settings_json) {
    check_setting_key(key);
    settings.set_initial(key, checked_setting_value(key, value));
  }
  for (auto& [key, value] : database->load_settings()) settings.set_persisted(key, std::move(value));
}

void Host::Impl::shutdown() {
  {
    std::lock_guard lock(shutdown_mutex);
    if (shut_down) return;
    shut_down = true;
  }
  {
    std::lock_guard lock(wait_mutex);
    waits_cancelled = true;
  }
  wait_cv.notify_all();
  if (plugins) plugins->unload_all();
  if (coordinator) coordinator->close();  // later publishes throw; the stand-in lanes are joined
  plugins.reset();
  coordinator.reset();
  event_log.reset();
  database.reset();
}

// ------------------------------------------------------------------- Host

Host::Host(HostOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  try {
    impl_->open_stores();
    wep::WriteEffectCoordinator::Options bus_options;
    bus_options.lane_capacity = impl_->options.lane_capacity;
    bus_options.log = log_plugin_line;
    impl_->coordinator = std::make_unique<wep::WriteEffectCoordinator>(std::move(bus_options));
    for (const char* name : kStandInEffects) {
      auto recorder = std::make_shared<Recorder>();
      impl_->recorders[name] = recorder;
      const uint32_t kinds = std::string_view(name) == "event_log" ? kAllEvents : kMutationCommitted;
      impl_->coordinator->add_effect(
          name,
          [recorder](const wep::Event& event) {
            if (event.kind != kMutationCommitted) return;
            recorder->mutations.fetch_add(1, std::memory_order_relaxed);
            recorder->last_sequence.store(event.sequence, std::memory_order_relaxed);
          },
          kinds);
    }
    wep::HostServices services;
    services.log = log_plugin_line;
    services.settings = &impl_->settings;
    services.identity = &impl_->identity;
    services.event_log = impl_->event_log.get();
    wep::PluginManager::Options plugin_options;
    plugin_options.data_root = impl_->options.data_dir / "plugins";
    plugin_options.stop_timeout_ms = impl_->options.plugin_stop_timeout_ms;
    impl_->plugins = std::make_unique<wep::PluginManager>(*impl_->coordinator, services, plugin_options);
    for (const auto& spec : impl_->options.plugins) load_plugin(spec.path, spec.config_json);
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
  if (!impl_->coordinator) throw HostError("host is shut down");

  HostDatabase& database = *impl_->database;
  return impl_->coordinator->publish_mutation(
      std::string(type), std::move(*payload), [&database](std::string_view event_type, std::string_view event_payload) {
        const int64_t committed_at_ms = now_ms();
        return wep::WriteEffectCoordinator::Commit{database.append_event(event_type, event_payload, committed_at_ms),
                                                   committed_at_ms};
      });
}

void Host::set_online(bool online) {
  if (!impl_->coordinator) throw HostError("host is shut down");
  impl_->coordinator->publish_connectivity(online);
}

bool Host::is_online() const { return impl_->coordinator && impl_->coordinator->online(); }

void Host::set_setting(std::string_view key, std::string_view value_json) {
  check_setting_key(key);
  std::string value = checked_setting_value(key, value_json);
  if (!impl_->coordinator) throw HostError("host is shut down");
  const std::string key_text(key);
  impl_->coordinator->publish_setting(key_text, value, [&] {
    impl_->database->put_setting(key_text, value, now_ms());
    impl_->settings.set_persisted(key_text, value);
  });
}

std::optional<std::string> Host::setting_json(std::string_view key) const { return impl_->settings.setting_json(key); }

std::optional<int64_t> Host::pending() {
  if (!impl_->plugins) return std::nullopt;
  return impl_->plugins->pending();
}

std::optional<int64_t> Host::wait_delivered(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto count = pending();
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

namespace {

// The integer member `key` of the JSON object `answer` of plugin `name`.
int64_t answer_member(const wep::PluginControlAnswer& answer, const char* key) {
  rapidjson::Document document;
  document.Parse(answer.answer_json.data(), answer.answer_json.size());
  if (document.HasParseError() || !document.IsObject() || !document.HasMember(key) || !document[key].IsInt64())
    throw HostError("plugin '" + answer.name + "' answered without an integer '" + key + "': " + answer.answer_json);
  return document[key].GetInt64();
}

}  // namespace

int64_t Host::requeue_dead_letters() {
  if (!impl_->plugins) throw HostError("host is shut down");
  int64_t total = 0;
  for (const auto& answer : impl_->plugins->control_all("requeue_dead_letters")) {
    if (answer.status != WEP_OK) throw HostError("plugin '" + answer.name + "': " + answer.answer_json);
    total += answer_member(answer, "requeued");
  }
  return total;
}

std::optional<int64_t> Host::dead_letter_rows() {
  if (!impl_->plugins) return std::nullopt;
  std::optional<int64_t> total;
  for (const auto& answer : impl_->plugins->control_all("dead_letters")) {
    if (answer.status != WEP_OK) continue;  // e.g. its store cannot be opened now
    total = total.value_or(0) + answer_member(answer, "dead_letter_rows");
  }
  return total;
}

std::string Host::load_plugin(const std::string& path, std::string_view config_json) {
  if (!impl_->plugins) throw HostError("host is shut down");
  return impl_->plugins->load(path, checked_plugin_config(path, config_json));
}

void Host::unload_plugin(std::string_view name) {
  if (!impl_->plugins) throw HostError("host is shut down");
  impl_->plugins->unload(name);
}

void Host::reload_plugin(std::string_view name, std::optional<std::string_view> config_json) {
  if (!impl_->plugins) throw HostError("host is shut down");
  std::optional<std::string> config;
  if (config_json) config = checked_plugin_config(name, *config_json);
  impl_->plugins->reload(name, std::move(config));
}

std::vector<wep::PluginInfo> Host::plugins() const {
  if (!impl_->plugins) return {};
  return impl_->plugins->plugins();
}

std::string Host::plugins_json() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  auto string = [&](const std::string& text) {
    writer.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
  };
  writer.StartArray();
  for (const auto& plugin : plugins()) {
    writer.StartObject();
    writer.Key("name");
    string(plugin.name);
    writer.Key("file");
    string(plugin.file);
    writer.Key("version");
    string(plugin.version);
    writer.Key("api");
    string(std::to_string(plugin.api_major) + "." + std::to_string(plugin.api_minor));
    writer.Key("state");
    writer.String(wep::plugin_state_name(plugin.state));
    writer.EndObject();
  }
  writer.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

void Host::add_effect(const std::string& name, EffectHandler handler, uint32_t event_kinds) {
  if (!handler) throw HostError("effect '" + name + "': empty handler");
  if (!impl_->coordinator) throw HostError("host is shut down");
  impl_->coordinator->add_effect(name, std::move(handler), event_kinds);
}

void Host::flush_effects() {
  if (impl_->coordinator) impl_->coordinator->flush();
}

bool Host::flush_effect(std::string_view name, std::chrono::milliseconds timeout) {
  return impl_->coordinator && impl_->coordinator->flush_effect(name, timeout);
}

std::string Host::stats_json() {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("online");
  writer.Bool(is_online());
  writer.Key("effects");
  writer.StartObject();
  if (impl_->coordinator) {
    for (const wep::EffectStats& s : impl_->coordinator->stats()) {
      writer.Key(s.name.c_str(), static_cast<rapidjson::SizeType>(s.name.size()));
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
      if (auto recorder = impl_->recorders.find(s.name); recorder != impl_->recorders.end()) {
        writer.Key("mutations");
        writer.Uint64(recorder->second->mutations.load());
        writer.Key("last_sequence");
        writer.Int64(recorder->second->last_sequence.load());
      }
      writer.EndObject();
    }
  }
  writer.EndObject();
  writer.Key("plugins");
  writer.StartObject();
  if (impl_->plugins) {
    for (const wep::PluginStats& plugin : impl_->plugins->stats()) {
      std::string error;
      auto stats = compact_json(plugin.stats_json, false, error);
      if (!stats) stats = "{\"error\":" + json_quote("invalid stats JSON: " + error) + "}";
      writer.Key(plugin.name.c_str(), static_cast<rapidjson::SizeType>(plugin.name.size()));
      writer.RawValue(stats->c_str(), stats->size(), rapidjson::kObjectType);
    }
  }
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string Host::pseudonymous_id() const { return impl_->identity.id; }

}  // namespace wep::host_stub
