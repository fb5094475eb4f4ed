// The WriteEffectCoordinator: effects run on their own lanes; a throwing or
// slow subscriber never changes a mutation's result or blocks the others.
#define BOOST_TEST_MODULE host_bus
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "harness_support.hpp"

using wep::host_stub::EventView;
using wep::host_stub::Host;
using wep::test::json_int;
using wep::test::options_for;
using wep::test::TempDir;

namespace {

const std::string kEffect = TEST_EFFECT_PLUGIN_PATH;

// A gate a host-side effect blocks on until the test opens it; also reports
// when the effect has entered its handler.
class Gate {
 public:
  void enter_and_wait() {
    std::unique_lock lock(mutex_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void wait_entered(int count) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return entered_ >= count; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool open_ = false;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_throwing_plugin_does_not_change_the_result_and_others_get_the_event) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"throw_on_event":true,"pending":true})"}}));
  for (int i = 1; i <= 5; ++i) BOOST_TEST(host.mutate("note.created", R"({"i":1})") == i);
  BOOST_TEST(host.pending().value() == 5);
  host.flush_effects();
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/plugins/test_effect/thrown") == 5);  // it did throw, every time
  BOOST_TEST(json_int(stats, "/effects/event_log/mutations") == 5);
  BOOST_TEST(json_int(stats, "/effects/sync_queue/mutations") == 5);
  BOOST_TEST(json_int(stats, "/effects/embedding_queue/last_sequence") == 5);
}

BOOST_AUTO_TEST_CASE(a_throwing_host_effect_is_caught_and_counted_per_effect) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  host.add_effect("thrower", [](const EventView&) { throw std::runtime_error("boom"); });
  std::vector<int64_t> sequences;
  for (int i = 0; i < 10; ++i) sequences.push_back(host.mutate("note.created"));
  for (int i = 0; i < 10; ++i) BOOST_TEST(sequences[i] == i + 1);
  host.flush_effects();
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/effects/thrower/failed") == 10);
  BOOST_TEST(json_int(stats, "/effects/thrower/delivered") == 0);
  BOOST_TEST(wep::test::json_string(stats, "/effects/thrower/last_error") == "boom");
  BOOST_TEST(json_int(stats, "/effects/event_log/failed") == 0);
  BOOST_TEST(json_int(stats, "/effects/event_log/delivered") == 10);
  BOOST_TEST(json_int(stats, "/effects/test_effect/delivered") == 10);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/mutations") == 10);
}

BOOST_AUTO_TEST_CASE(a_blocked_effect_does_not_block_mutations_or_other_effects) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  Gate gate;
  host.add_effect(
      "stuck", [&](const EventView&) { gate.enter_and_wait(); }, wep::host_stub::kMutationCommitted);
  for (int i = 1; i <= 20; ++i) BOOST_TEST(host.mutate("note.created") == i);
  gate.wait_entered(1);
  // Every other effect got everything while "stuck" still holds the first event.
  BOOST_TEST(host.flush_effect("event_log", std::chrono::seconds(30)));
  BOOST_TEST(host.flush_effect("sync_queue", std::chrono::seconds(30)));
  BOOST_TEST(host.pending().value() == 20);
  std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/effects/event_log/mutations") == 20);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/mutations") == 20);
  BOOST_TEST(json_int(stats, "/effects/stuck/delivered") == 0);
  BOOST_TEST(json_int(stats, "/effects/stuck/queued") == 19);
  gate.open();
  host.flush_effects();
  stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/effects/stuck/delivered") == 20);
  BOOST_TEST(json_int(stats, "/effects/stuck/dropped") == 0);
}

BOOST_AUTO_TEST_CASE(a_full_lane_drops_and_counts_for_that_effect_only) {
  TempDir dir;
  auto options = options_for(dir.path());
  options.lane_capacity = 4;
  Host host(options);
  Gate gate;
  host.add_effect(
      "stuck", [&](const EventView&) { gate.enter_and_wait(); }, wep::host_stub::kMutationCommitted);
  host.mutate("first");
  gate.wait_entered(1);  // the worker holds event 1; the lane is empty
  for (int i = 0; i < 10; ++i) host.mutate("more");
  // Events 2..5 fill the lane; 6..11 find it full.
  std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/effects/stuck/queued") == 4);
  BOOST_TEST(json_int(stats, "/effects/stuck/dropped") == 6);
  gate.open();
  host.flush_effects();
  stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/effects/stuck/delivered") == 5);
  BOOST_TEST(json_int(stats, "/effects/stuck/dropped") == 6);
}

BOOST_AUTO_TEST_CASE(a_slow_plugin_does_not_block_mutations_or_other_effects) {
  TempDir dir;
  int gate[2];  // the plugin reads one byte from gate[0] before handling each mutation
  BOOST_TEST_REQUIRE(::pipe(gate) == 0);
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true,"block_on_fd":)" + std::to_string(gate[0]) + "}"}}));
  // The plugin is stuck in its first mutation: mutate must still return, and
  // the other effects must still get every event.
  auto mutations = std::async(std::launch::async, [&] {
    for (int i = 1; i <= 10; ++i) host.mutate("note.created");
  });
  const bool returned = mutations.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  BOOST_TEST(returned, "mutate waited for a blocked plugin");
  BOOST_TEST(host.flush_effect("event_log", std::chrono::seconds(30)));
  BOOST_TEST(json_int(host.stats_json(), "/effects/event_log/mutations") == 10);
  BOOST_TEST(json_int(host.stats_json(), "/effects/test_effect/delivered") == 0);  // still held

  BOOST_TEST_REQUIRE(::write(gate[1], "xxxxxxxxxx", 10) == 10);  // open the gate for all ten
  mutations.wait();
  BOOST_TEST(host.pending().value() == 10);  // the barrier waits for the plugin's lane
  BOOST_TEST(json_int(host.stats_json(), "/effects/test_effect/delivered") == 10);
  host.shutdown();
  ::close(gate[0]);
  ::close(gate[1]);
}

BOOST_AUTO_TEST_CASE(the_plugin_sees_connectivity_and_settings_in_bus_order) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  std::vector<std::string> seen;
  std::mutex seen_mutex;
  host.add_effect("recorder", [&](const EventView& e) {
    std::lock_guard lock(seen_mutex);
    if (e.kind == wep::host_stub::kMutationCommitted) seen.push_back("m" + std::to_string(e.sequence));
    if (e.kind == wep::host_stub::kConnectivityChanged) seen.push_back(e.online ? "online" : "offline");
    if (e.kind == wep::host_stub::kSettingChanged)
      seen.push_back(std::string(e.setting_key) + "=" + std::string(e.setting_value_json));
  });
  BOOST_TEST(!host.is_online());  // starts offline
  host.mutate("a");
  host.set_online(true);
  host.mutate("b");
  host.set_setting("analytics_enabled", "false");
  host.set_online(false);
  host.flush_effects();
  {
    std::lock_guard lock(seen_mutex);
    const std::vector<std::string> expected = {"m1", "online", "m2", "analytics_enabled=false", "offline"};
    BOOST_TEST(seen == expected, boost::test_tools::per_element());
  }
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/plugins/test_effect/connectivity") == 2);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/settings") == 1);
  BOOST_TEST(wep::test::json_string(stats, "/plugins/test_effect/analytics_enabled") == "false");
  // Delivered while online: m2 (and m1, pending when going online).
  BOOST_TEST(host.pending().value() == 0);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/delivered") == 2);
}

BOOST_AUTO_TEST_CASE(a_plugin_subscribed_to_mutations_only_gets_nothing_else) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"subscribe":1,"pending":true})"}}));
  host.set_online(true);
  host.set_setting("analytics_enabled", "false");
  host.mutate("a");
  BOOST_TEST(host.pending().value() == 1);  // never saw "online"
  const std::string stats = host.stats_json();
  BOOST_TEST(json_int(stats, "/plugins/test_effect/events") == 1);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/connectivity") == 0);
}

BOOST_AUTO_TEST_CASE(many_threads_mutating_get_unique_sequences_and_every_effect_gets_every_event) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect, R"({"pending":true})"}}));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  std::vector<std::vector<int64_t>> sequences(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        sequences[t].push_back(host.mutate("load.test", "{\"t\":" + std::to_string(t) + "}"));
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<int64_t> unique;
  for (const auto& list : sequences) {
    for (size_t i = 1; i < list.size(); ++i) BOOST_TEST_REQUIRE(list[i] > list[i - 1]);  // per caller: increasing
    unique.insert(list.begin(), list.end());
  }
  constexpr int kTotal = kThreads * kPerThread;
  BOOST_TEST(unique.size() == static_cast<size_t>(kTotal));
  BOOST_TEST(*unique.begin() == 1);
  BOOST_TEST(*unique.rbegin() == kTotal);
  BOOST_TEST(host.pending().value() == kTotal);
  host.flush_effects();
  const std::string stats = host.stats_json();
  for (const char* effect : {"/effects/event_log", "/effects/sync_queue", "/effects/embedding_queue"}) {
    BOOST_TEST(json_int(stats, (std::string(effect) + "/mutations").c_str()) == kTotal);
    BOOST_TEST(json_int(stats, (std::string(effect) + "/dropped").c_str()) == 0);
  }
  BOOST_TEST(json_int(stats, "/plugins/test_effect/mutations") == kTotal);
  BOOST_TEST(json_int(stats, "/plugins/test_effect/out_of_order") == 0);  // bus order = sequence order
}

BOOST_AUTO_TEST_CASE(add_effect_refuses_duplicates_and_use_after_shutdown) {
  TempDir dir;
  Host host(options_for(dir.path(), {{kEffect}}));
  BOOST_CHECK_THROW(host.add_effect("event_log", [](const EventView&) {}), wep::host_stub::HostError);
  BOOST_CHECK_THROW(host.add_effect("test_effect", [](const EventView&) {}), wep::host_stub::HostError);
  BOOST_CHECK_THROW(host.add_effect("", [](const EventView&) {}), wep::host_stub::HostError);
  BOOST_TEST(!host.flush_effect("nope", std::chrono::milliseconds(0)));
  BOOST_TEST(!host.pending().has_value());  // the plugin keeps no queue (pending=false)
  host.shutdown();
  host.shutdown();  // idempotent
  BOOST_CHECK_THROW(host.add_effect("late", [](const EventView&) {}), wep::host_stub::HostError);
  BOOST_CHECK_THROW(host.mutate("late"), wep::host_stub::HostError);
}
