// The host library on its own (wep::host), as a host application embeds it:
// no harness, in-memory services, the real test plugin through Boost.DLL.
#define BOOST_TEST_MODULE host_library
#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <wep/host/plugin_manager.hpp>
#include <wep/host/write_effect_coordinator.hpp>

#include "test_support.hpp"

using wep::test::is_mapped;
using wep::test::json_bool;
using wep::test::json_int;
using wep::test::json_string;
using wep::test::TempDir;
using wep::Event;
using wep::HostError;
using wep::PluginManager;
using wep::PluginState;
using wep::WriteEffectCoordinator;

namespace wep {
// For Boost.Test's messages.
inline std::ostream& operator<<(std::ostream& out, PluginState state) { return out << plugin_state_name(state); }
}  // namespace wep

namespace {

const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;

// Publishes a mutation whose commit just numbers it.
int64_t publish(WriteEffectCoordinator& bus, int64_t& last_sequence, const std::string& type = "note.created") {
  return bus.publish_mutation(type, "{}", [&](std::string_view, std::string_view) {
    return WriteEffectCoordinator::Commit{++last_sequence, 0};
  });
}

// Settings whose reads can be held at a gate: a plugin's start() that reads
// a setting then waits, so a test can publish while a reload is under way.
class GatedSettings final : public wep::SettingsSource {
 public:
  std::optional<std::string> setting_json(std::string_view key) const override {
    std::unique_lock lock(mutex_);
    if (armed_) {
      armed_ = false;
      entered_ = true;
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
    }
    if (key == "analytics_enabled") return "true";
    return std::nullopt;
  }
  void arm() {
    std::lock_guard lock(mutex_);
    armed_ = true;
    entered_ = false;
    open_ = false;
  }
  void wait_entered() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  mutable bool armed_ = false;
  mutable bool entered_ = false;
  bool open_ = true;
};

class FixedIdentity final : public wep::IdentitySource {
 public:
  std::optional<std::string> pseudonymous_id() const override { return "0b7f4c2e-5d1a-4c3b-9e8f-1a2b3c4d5e6f"; }
};

struct Fixture {
  TempDir dir;
  GatedSettings settings;
  FixedIdentity identity;
  std::mutex log_mutex;
  std::vector<std::string> log_lines;
  WriteEffectCoordinator bus;
  std::unique_ptr<PluginManager> manager;

  Fixture() {
    wep::HostServices services;
    services.settings = &settings;
    services.identity = &identity;
    services.log = [this](int32_t level, std::string_view plugin, std::string_view message) {
      std::lock_guard lock(log_mutex);
      log_lines.push_back(std::string(plugin) + " " + wep::log_level_name(level) + ": " + std::string(message));
    };
    PluginManager::Options options;
    options.data_root = dir.path() / "plugins";
    manager = std::make_unique<PluginManager>(bus, services, options);
  }
  std::string stats_of(const std::string& name) {
    for (const auto& s : manager->stats())
      if (s.name == name) return s.stats_json;
    return "{}";
  }
};

}  // namespace

// ------------------------------------------------------------ coordinator

BOOST_AUTO_TEST_CASE(publication_order_is_commit_order_across_committing_threads) {
  WriteEffectCoordinator bus;
  std::vector<int64_t> seen;
  bus.add_effect(
      "recorder", [&](const Event& e) { seen.push_back(e.sequence); }, wep::kMutationCommitted);
  int64_t last = 0;  // guarded by the publication lock: commits run under it
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) publish(bus, last);
    });
  for (auto& thread : threads) thread.join();
  bus.flush();
  BOOST_TEST_REQUIRE(seen.size() == 8000u);
  for (size_t i = 0; i < seen.size(); ++i) BOOST_TEST_REQUIRE(seen[i] == static_cast<int64_t>(i + 1));
}

BOOST_AUTO_TEST_CASE(a_commit_that_throws_publishes_nothing) {
  WriteEffectCoordinator bus;
  int calls = 0;
  bus.add_effect("recorder", [&](const Event&) { ++calls; });
  BOOST_CHECK_THROW(bus.publish_mutation("x", "{}",
                                         [](std::string_view, std::string_view) -> WriteEffectCoordinator::Commit {
                                           throw std::runtime_error("disk full");
                                         }),
                    std::runtime_error);
  bus.flush();
  BOOST_TEST(calls == 0);
  BOOST_TEST(bus.stats().at(0).delivered == 0u);
}

BOOST_AUTO_TEST_CASE(a_paused_effect_queues_in_order_and_drops_only_past_its_capacity) {
  WriteEffectCoordinator::Options options;
  options.lane_capacity = 5;
  WriteEffectCoordinator bus(options);
  std::vector<int64_t> seen;
  bus.add_effect("paused", [&](const Event& e) { seen.push_back(e.sequence); });
  std::vector<int64_t> other;
  bus.add_effect("other", [&](const Event& e) { other.push_back(e.sequence); });
  BOOST_TEST_REQUIRE(bus.pause_effect("paused"));
  int64_t last = 0;
  for (int i = 0; i < 8; ++i) {
    publish(bus, last);
    BOOST_TEST_REQUIRE(bus.flush_effect("other", std::chrono::seconds(30)));  // the other effect is not held
  }
  BOOST_TEST(other.size() == 8u);
  auto held = bus.effect_stats("paused").value();
  BOOST_TEST(held.delivered == 0u);  // publishing returned; nothing reached the paused effect
  BOOST_TEST(held.queued == 5u);
  BOOST_TEST(held.dropped == 3u);
  BOOST_TEST(bus.resume_effect("paused"));
  bus.flush();
  BOOST_TEST((seen == std::vector<int64_t>{1, 2, 3, 4, 5}));
}

BOOST_AUTO_TEST_CASE(remove_effect_hands_over_what_it_accepted_and_never_calls_after) {
  WriteEffectCoordinator bus;
  std::atomic<int> calls{0};
  bus.add_effect("slow", [&](const Event&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++calls;
  });
  int64_t last = 0;
  for (int i = 0; i < 50; ++i) publish(bus, last);
  BOOST_TEST(bus.remove_effect("slow"));
  BOOST_TEST(calls.load() == 50);
  publish(bus, last);
  BOOST_TEST(calls.load() == 50);
  BOOST_TEST(!bus.has_effect("slow"));
  BOOST_TEST(!bus.remove_effect("slow"));
}

BOOST_AUTO_TEST_CASE(names_are_unique_and_a_closed_coordinator_refuses_work) {
  WriteEffectCoordinator bus;
  bus.add_effect("a", [](const Event&) {});
  BOOST_CHECK_THROW(bus.add_effect("a", [](const Event&) {}), HostError);
  BOOST_CHECK_THROW(bus.add_effect("", [](const Event&) {}), HostError);
  bus.close();
  BOOST_TEST(bus.closed());
  int64_t last = 0;
  BOOST_CHECK_THROW(publish(bus, last), HostError);
  BOOST_CHECK_THROW(bus.publish_connectivity(true), HostError);
  BOOST_CHECK_THROW(bus.add_effect("b", [](const Event&) {}), HostError);
  BOOST_TEST(bus.stats().empty());
}

BOOST_AUTO_TEST_CASE(settings_and_connectivity_keep_the_publication_order) {
  WriteEffectCoordinator bus;
  std::vector<std::string> seen;
  bus.add_effect("recorder", [&](const Event& e) {
    if (e.kind == wep::kMutationCommitted) seen.push_back("m" + std::to_string(e.sequence));
    if (e.kind == wep::kSettingChanged) seen.push_back(e.setting_key + "=" + e.setting_value_json);
    if (e.kind == wep::kConnectivityChanged) seen.push_back(e.online ? "online" : "offline");
  });
  int64_t last = 0;
  bool persisted = false;
  publish(bus, last);
  bus.publish_setting("analytics_enabled", "false", [&] { persisted = true; });
  bus.publish_connectivity(true);
  publish(bus, last);
  bus.flush();
  BOOST_TEST(persisted);
  BOOST_TEST(bus.online());
  BOOST_TEST((seen == std::vector<std::string>{"m1", "analytics_enabled=false", "online", "m2"}));
}

// --------------------------------------------------------- plugin manager

BOOST_AUTO_TEST_CASE(plugins_load_list_reload_and_unload_at_run_time) {
  Fixture f;
  const std::string name = f.manager->load(kEffect, R"({"pending":true})");
  BOOST_TEST(name == "test_effect");
  auto info = f.manager->plugin(name).value();
  BOOST_TEST(info.file == kEffect);
  BOOST_TEST(info.state == PluginState::kRunning);
  BOOST_TEST(info.api_major == WEP_API_VERSION_MAJOR);
  BOOST_TEST(!info.version.empty());
  BOOST_TEST(std::filesystem::is_directory(f.dir.path() / "plugins" / "test_effect"));
  BOOST_TEST(json_string(f.stats_of(name), "/pseudonymous_id") == "0b7f4c2e-5d1a-4c3b-9e8f-1a2b3c4d5e6f");

  int64_t last = 0;
  for (int i = 0; i < 3; ++i) publish(f.bus, last);
  BOOST_TEST(f.manager->pending().value() == 3);

  f.manager->reload(name, R"({"pending":true,"subscribe":1})");
  BOOST_TEST(is_mapped(kEffect));
  BOOST_TEST(f.manager->plugin(name)->config_json == R"({"pending":true,"subscribe":1})");
  BOOST_TEST(f.manager->pending().value() == 0);  // a new instance: its own count
  publish(f.bus, last);
  f.bus.publish_connectivity(false);
  BOOST_TEST(f.manager->pending().value() == 1);
  BOOST_TEST(json_int(f.stats_of(name), "/connectivity") == 0);  // subscribed to mutations only

  BOOST_CHECK_THROW(f.manager->load(kEffect), HostError);  // one instance per name
  BOOST_TEST(f.manager->unload(name));
  BOOST_TEST(!is_mapped(kEffect));
  BOOST_TEST(f.manager->plugins().empty());
  BOOST_TEST(!f.bus.has_effect(name));
  BOOST_CHECK_THROW(f.manager->unload(name), HostError);
  BOOST_CHECK_THROW(f.manager->reload(name), HostError);
}

BOOST_AUTO_TEST_CASE(events_published_during_a_reload_wait_and_reach_the_new_instance_in_order) {
  Fixture f;
  const std::string name = f.manager->load(kEffect, R"({"pending":true})");
  int64_t last = 0;
  publish(f.bus, last);
  BOOST_TEST_REQUIRE(f.bus.flush_effect(name));  // the old instance has it

  f.settings.arm();  // the new instance's start() will wait at its first setting read
  std::thread reload([&] { f.manager->reload(name); });
  f.settings.wait_entered();
  BOOST_TEST(f.manager->plugin(name)->state == PluginState::kReloading);
  for (int i = 0; i < 20; ++i) publish(f.bus, last);  // returns at once: nothing waits for the swap
  BOOST_TEST(f.bus.effect_stats(name)->queued == 20u);
  f.settings.open();
  reload.join();

  BOOST_TEST(f.manager->pending().value() == 20);
  const std::string stats = f.stats_of(name);
  BOOST_TEST(json_int(stats, "/mutations") == 20);
  BOOST_TEST(json_int(stats, "/last_sequence") == 21);
  BOOST_TEST(json_int(stats, "/out_of_order") == 0);
  BOOST_TEST(f.bus.effect_stats(name)->dropped == 0u);
}

BOOST_AUTO_TEST_CASE(a_reloaded_plugin_is_told_the_host_is_online) {
  Fixture f;
  f.bus.publish_connectivity(true);
  const std::string name = f.manager->load(kEffect, R"({"pending":true})");
  f.bus.flush();
  BOOST_TEST(json_bool(f.stats_of(name), "/online"));  // loaded while online: told so
  f.manager->reload(name);
  f.bus.flush();
  BOOST_TEST(json_bool(f.stats_of(name), "/online"));
  int64_t last = 0;
  publish(f.bus, last);
  BOOST_TEST(f.manager->pending().value() == 0);  // the test plugin delivers at once while online
}

BOOST_AUTO_TEST_CASE(a_refused_reload_restarts_the_previous_config) {
  Fixture f;
  const std::string name = f.manager->load(kEffect, R"({"pending":true})");
  std::string message;
  try {
    f.manager->reload(name, R"({"no_such_key":1})");
  } catch (const HostError& e) {
    message = e.what();
  }
  BOOST_TEST(message.find("/no_such_key") != std::string::npos, message);
  BOOST_TEST(message.find("previous config is running again") != std::string::npos, message);
  BOOST_TEST(f.manager->plugin(name)->state == PluginState::kRunning);
  BOOST_TEST(f.manager->plugin(name)->config_json == R"({"pending":true})");
  int64_t last = 0;
  publish(f.bus, last);
  BOOST_TEST(f.manager->pending().value() == 1);
}

BOOST_AUTO_TEST_CASE(a_refused_load_leaves_nothing_behind) {
  Fixture f;
  BOOST_CHECK_THROW(f.manager->load(kEffect, R"({"fail_start":true})"), HostError);
  BOOST_CHECK_THROW(f.manager->load(f.dir.path().string() + "/missing.so"), HostError);
  BOOST_TEST(f.manager->plugins().empty());
  BOOST_TEST(!f.bus.has_effect("test_effect"));
  BOOST_TEST(!is_mapped(kEffect));
  BOOST_TEST(f.manager->load(kEffect) == "test_effect");  // and it loads fine afterwards
}

BOOST_AUTO_TEST_CASE(a_plugin_that_fails_after_subscribing_is_torn_down_while_events_flow) {
  Fixture f;
  std::atomic<bool> stop{false};
  int64_t last = 0;
  std::thread publisher([&] {
    while (!stop.load()) {
      publish(f.bus, last);
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // a steady rate
    }
  });
  for (int i = 0; i < 200; ++i) {
    BOOST_CHECK_THROW(f.manager->load(kEffect, R"({"fail_after_subscribe":true,"sleep_on_event_ms":1})"), HostError);
    BOOST_TEST_REQUIRE(!is_mapped(kEffect));
    BOOST_TEST_REQUIRE(!f.bus.has_effect("test_effect"));
  }
  stop.store(true);
  publisher.join();
  BOOST_TEST(f.manager->plugins().empty());
}

BOOST_AUTO_TEST_CASE(reload_100_times_while_publishing_really_unmaps_and_loses_nothing) {
  Fixture f;
  const std::string name = f.manager->load(kEffect, R"({"pending":true,"start_thread":true})");
  std::atomic<bool> stop{false};
  int64_t last = 0;
  std::thread publisher([&] {
    while (!stop.load()) {
      publish(f.bus, last);
      // A steady rate, as mutations come: an unthrottled loop would
      // overflow any bounded lane during a reload, by design.
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  for (int cycle = 0; cycle < 100; ++cycle) f.manager->reload(name);
  stop.store(true);
  publisher.join();
  BOOST_TEST(f.bus.effect_stats(name)->dropped == 0u);
  BOOST_TEST(json_int(f.stats_of(name), "/out_of_order") == 0);
  f.manager->unload_all();
  BOOST_TEST(!is_mapped(kEffect));
}
