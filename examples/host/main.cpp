// A host application embedding the SDK: it owns the WriteEffectCoordinator,
// commits its own mutations to an (in-memory) event log, runs one effect of
// its own, and loads the installed analytics plugin, which delivers to the
// NDJSON transport.
//
//   example-host [DATA_DIR] [PLUGIN_DIR]
//
// Prints where the delivered rows are. Exit status 0 when every mapped
// mutation was delivered.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <wep/host/plugin_manager.hpp>
#include <wep/host/write_effect_coordinator.hpp>

namespace {

// What the host implements: settings, identity and (optionally) its event log.
class Settings final : public wep::SettingsSource {
 public:
  std::optional<std::string> setting_json(std::string_view key) const override {
    if (key == "analytics_enabled") return "true";  // the user's choice, from the app's own store
    return std::nullopt;
  }
};

class Identity final : public wep::IdentitySource {
 public:
  std::optional<std::string> pseudonymous_id() const override { return "5f0c8a52-3d7e-4b1a-9c2f-7e6d5b4a3c21"; }
};

class EventLog final : public wep::EventLogSource {
 public:
  int64_t append(std::string_view type, std::string_view payload_json, int64_t committed_at_ms) {
    std::lock_guard lock(mutex_);
    entries_.push_back({std::string(type), std::string(payload_json), committed_at_ms});
    return static_cast<int64_t>(entries_.size());  // the sequence
  }
  void read_after(int64_t after, const std::function<bool(const wep::LoggedEvent&)>& visit) const override {
    std::lock_guard lock(mutex_);
    for (size_t i = static_cast<size_t>(after); i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      wep::LoggedEvent event;  // this app logs mutations only
      event.sequence = static_cast<int64_t>(i + 1);
      event.type = e.type;
      event.payload_json = e.payload_json;
      event.committed_at_ms = e.committed_at_ms;
      if (!visit(event)) return;
    }
  }
  int64_t last_sequence() const override {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(entries_.size());
  }

 private:
  struct Entry {
    std::string type, payload_json;
    int64_t committed_at_ms;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path data_dir = argc > 1 ? argv[1] : "example-host-data";
  const std::string plugin_dir = argc > 2 ? argv[2] : WEP_EXAMPLE_PLUGIN_DIR;
  Settings settings;
  Identity identity;
  EventLog event_log;
  wep::HostServices services;
  services.settings = &settings;
  services.identity = &identity;
  services.event_log = &event_log;
  services.log = [](int32_t level, std::string_view plugin, std::string_view message) {
    std::fprintf(stderr, "[%.*s] %s: %.*s\n", static_cast<int>(plugin.size()), plugin.data(),
                 wep::log_level_name(level), static_cast<int>(message.size()), message.data());
  };

  try {
    wep::WriteEffectCoordinator bus;  // declared before the manager: outlives it
    std::atomic<int> indexed{0};      // the app's own effect, on its own lane
    bus.add_effect(
        "search_index", [&](const wep::Event&) { ++indexed; }, wep::kMutationCommitted);

    wep::PluginManager plugins(bus, services, {data_dir / "plugins"});
    plugins.load(plugin_dir + "/libwep_analytics.so", R"({
      "flush_interval_ms": 100,
      "events": {"note.created": {"event_type": "note_created", "properties": ["word_count"]}},
      "transport": {"plugin": "libwep_ndjson.so", "config": {"path": "events.ndjson"}}})");

    // The app's mutation use case: commit, then publish (in commit order).
    auto commit = [&](std::string type, std::string payload) {
      return bus.publish_mutation(std::move(type), std::move(payload), [&](std::string_view t, std::string_view p) {
        const int64_t at = now_ms();
        return wep::WriteEffectCoordinator::Commit{event_log.append(t, p, at), at};
      });
    };
    for (int i = 1; i <= 5; ++i)
      commit("note.created", R"({"word_count": )" + std::to_string(i * 10) + R"(, "title": "private"})");
    commit("note.deleted", R"({"id": 7})");  // not mapped: never recorded

    bus.publish_connectivity(true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::optional<int64_t> pending;
    while ((pending = plugins.pending()).value_or(0) > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // delivery has no event to wait on here
    bus.flush();
    std::printf("committed %lld mutations, indexed %d, pending %lld\n",
                static_cast<long long>(event_log.last_sequence()), indexed.load(),
                static_cast<long long>(pending.value_or(-1)));
    std::printf("delivered rows: %s\n",
                (data_dir / "plugins" / "analytics" / "transport" / "events.ndjson").string().c_str());
    plugins.unload_all();
    return pending == 0 ? 0 : 1;
  } catch (const wep::HostError& e) {
    std::fprintf(stderr, "example-host: %s\n", e.what());
    return 2;
  }
}
