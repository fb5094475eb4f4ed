// The real analytics plugin (build/plugins/libwep_analytics.so) loaded into the
// host stub in-process: rows, opt-out, PII screening, age-out, caps, checked by reading
// the SQLite queue file directly.
#define BOOST_TEST_MODULE analytics_plugin
#include <algorithm>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <wep/host_stub/host.hpp>
#include <numeric>
#include <set>
#include <thread>
#include <wep/bench/thread_switches.hpp>

#include "test_support.hpp"

using wep::test::Db;
using wep::test::now_ms;
using wep::test::Row;
using wep::test::stat;
using wep::test::stat_text;
using wep::test::TempDir;
namespace fs = std::filesystem;

namespace {

// The mapping every test uses: note.created keeps four keys, note.deleted
// none; anything else is unmapped.
constexpr const char* kEvents =
    R"("events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length", "pinned", "n"]},
                  "note.deleted": {"event_type": "note_deleted"}})";

wep::host_stub::HostOptions options(const TempDir& dir, const std::string& extra_config = "",
                               std::vector<wep::host_stub::PluginSpec> plugins_before = {}) {
  wep::host_stub::HostOptions o;
  o.data_dir = dir / "host";
  o.plugins = std::move(plugins_before);
  o.plugins.push_back({WEP_ANALYTICS_PATH, "{" + std::string(kEvents) + extra_config + "}"});
  return o;
}

fs::path queue_file(const TempDir& dir) { return dir / "host/plugins/analytics/analytics.db"; }

int64_t analytics_stat(wep::host_stub::Host& host, const std::string& pointer) {
  return stat(host.stats_json(), ("/plugins/analytics" + pointer).c_str());
}

std::string payload_n(int n) { return R"({"kind": "text", "n": )" + std::to_string(n) + "}"; }

// The "n" property of every row, in row order.
std::vector<int> ns_of(const std::vector<Row>& rows) {
  std::vector<int> out;
  for (const auto& row : rows) {
    if (auto n = wep::test::property_n(row.properties)) out.push_back(static_cast<int>(*n));
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_mutation_becomes_a_row_with_every_column_checked) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  const int64_t before_ms = now_ms();
  const int64_t sequence =
      host.mutate("note.created", R"({"kind": "text", "length": 42, "pinned": false, "title": "My secret"})");
  const int64_t after_ms = now_ms();
  BOOST_TEST(sequence > 0);
  BOOST_TEST(host.pending().value_or(-1) == 1);

  Db db(queue_file(dir));
  const auto rows = db.rows();
  BOOST_REQUIRE(rows.size() == 1u);
  const Row& row = rows[0];
  BOOST_TEST(row.id == 1);
  BOOST_TEST(row.event_type == "note_created");
  BOOST_TEST(row.properties.value_or("NULL") == R"({"kind":"text","length":42,"pinned":false})");
  BOOST_TEST(row.user_id.value_or("NULL") == host.pseudonymous_id());
  BOOST_TEST(wep::test::is_spec_timestamp(row.created_at));
  // created_at is the commit time (UTC), between the calls around mutate().
  const std::string lower = db.scalar("SELECT strftime('%Y-%m-%dT%H:%M:%f', " + std::to_string(before_ms / 1000) +
                                      " + " + std::to_string(before_ms % 1000) + " / 1000.0, 'unixepoch')");
  const std::string upper = db.scalar("SELECT strftime('%Y-%m-%dT%H:%M:%f', " + std::to_string(after_ms / 1000) +
                                      " + " + std::to_string(after_ms % 1000) + " / 1000.0, 'unixepoch')");
  BOOST_TEST(row.created_at >= lower.substr(0, 19));
  BOOST_TEST(row.created_at <= upper);

  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/accepted") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/stored") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/pending") == 1);
  BOOST_TEST(stat_text(stats, "/plugins/analytics/last_error").empty());
}

BOOST_AUTO_TEST_CASE(opt_out_enqueue_is_a_no_op_and_queued_rows_stay) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  host.mutate("note.created", payload_n(1));
  BOOST_TEST(host.pending().value_or(-1) == 1);

  host.set_setting("analytics_enabled", "false");
  for (int n = 2; n <= 4; ++n) host.mutate("note.created", payload_n(n));  // mutations still succeed
  BOOST_TEST(host.pending().value_or(-1) == 1);                            // row 1 kept, nothing added
  BOOST_TEST(analytics_stat(host, "/dropped/disabled") == 3);
  BOOST_TEST(host.stats_json().find(R"("enabled":false)") != std::string::npos);

  host.set_setting("analytics_enabled", "true");
  host.mutate("note.created", payload_n(5));
  BOOST_TEST(host.pending().value_or(-1) == 2);
  // Events that arrived while disabled are never recorded later.
  BOOST_TEST((ns_of(Db(queue_file(dir)).rows()) == std::vector<int>{1, 5}));
}

BOOST_AUTO_TEST_CASE(opt_out_flush_sends_nothing_until_enabled_again) {
  TempDir dir;
  const fs::path ndjson = dir / "delivered.ndjson";
  const std::string transport = R"(, "flush_interval_ms": 10, "transport": {"plugin": ")" + std::string(WEP_NDJSON_PATH) +
                                R"(", "config": {"path": ")" + ndjson.string() + R"(", "fsync": false}})";
  wep::host_stub::Host host(options(dir, transport));
  for (int n = 1; n <= 3; ++n) host.mutate("note.created", payload_n(n));
  BOOST_TEST(host.pending().value_or(-1) == 3);

  host.set_setting("analytics_enabled", "false");
  host.set_online(true);
  BOOST_TEST(host.pending().value_or(-1) == 3);  // barrier: the plugin has handed both changes to its flusher
  // Disabled and online: the flusher thread itself has seen both changes and
  // parked; from there only a change of either wakes it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (stat_text(host.stats_json(), "/plugins/analytics/flusher") != "paused" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BOOST_TEST(stat_text(host.stats_json(), "/plugins/analytics/flusher") == "paused");
  BOOST_TEST(analytics_stat(host, "/requests") == 0);
  BOOST_TEST((!fs::exists(ndjson) || fs::file_size(ndjson) == 0));
  BOOST_TEST(Db(queue_file(dir)).rows().size() == 3u);  // rows kept

  host.set_setting("analytics_enabled", "true");
  BOOST_TEST(host.wait_delivered(std::chrono::seconds(20)).value_or(-1) == 0);
  BOOST_TEST(analytics_stat(host, "/delivered") == 3);
  std::ifstream in(ndjson);
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  BOOST_TEST(lines == 3);
}

// An idle plugin sleeps: with nothing to store or send, its threads (writer,
// flusher, flusher-db) do not wake on a timer, offline or online. A short
// flush_interval_ms makes a flusher that polls show up within the window;
// the maintenance timer (the one periodic wake-up) is pushed out of the way.
BOOST_AUTO_TEST_CASE(an_idle_plugin_does_not_poll_offline_or_online) {
  using namespace std::chrono_literals;
  TempDir dir;
  const std::string config =
      "{" + std::string(kEvents) +
      R"(, "flush_interval_ms": 100, "maintenance_interval_ms": 3600000, "transport": {"plugin": ")" +
      std::string(WEP_NDJSON_PATH) + R"(", "config": {"path": ")" + (dir / "delivered.ndjson").string() +
      R"(", "fsync": false}}})";
  wep::test::FakeHost host("analytics", config, dir / "data");
  wep::bench::StartedThreadSwitches counter;  // this thread is not the plugin's
  wep::test::LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  // Wake-ups allowed in a 1 s idle window: a polling flusher at 100 ms makes
  // dozens (it and the flusher-db thread wake on every pass).
  constexpr int64_t kAtMost = 5;
  const auto expect_idle = [&](const std::string& state) {
    std::this_thread::sleep_for(1s);  // the state change settles
    counter.begin();
    std::this_thread::sleep_for(1s);
    const auto window = counter.end();
    BOOST_TEST_INFO(state + ": " + window.describe());
    BOOST_TEST(window.switches <= kAtMost);
  };

  expect_idle("offline");
  plugin.connectivity(true);
  expect_idle("online, empty queue");

  // Asleep, not stuck: a row stored now is sent at once.
  plugin.mutation("note.created", payload_n(1), 1, now_ms());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stat(plugin.stats(), "/delivered") < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  BOOST_TEST(stat(plugin.stats(), "/delivered") == 1);
  // After a drain the flusher looks once more (after flush_interval_ms), then sleeps.
  expect_idle("online, after a delivery");

  plugin.connectivity(false);
  expect_idle("offline again");
  BOOST_TEST(plugin.stop() == WEP_OK);
}

// The idle flusher sleeps until its own writer stores a row; rows another
// connection stored in the same file are found at the maintenance tick.
BOOST_AUTO_TEST_CASE(rows_another_connection_stored_are_sent_at_the_maintenance_tick) {
  using namespace std::chrono_literals;
  TempDir dir;
  const std::string database = R"(, "database": ")" + (dir / "shared.db").string() + "\"";
  const std::string sender_config =
      "{" + std::string(kEvents) + database +
      R"(, "flush_interval_ms": 100, "maintenance_interval_ms": 300, "transport": {"plugin": ")" +
      std::string(WEP_NDJSON_PATH) + R"(", "config": {"path": ")" + (dir / "delivered.ndjson").string() +
      R"(", "fsync": false}}})";
  wep::test::FakeHost sender_host("analytics", sender_config, dir / "sender");
  wep::test::LoadedPlugin sender(WEP_ANALYTICS_PATH, sender_host);
  sender.connectivity(true);
  std::this_thread::sleep_for(300ms);  // its first pass finds the queue empty: it sleeps
  {
    wep::test::FakeHost other_host("analytics", "{" + std::string(kEvents) + database + "}", dir / "other");
    wep::test::LoadedPlugin other(WEP_ANALYTICS_PATH, other_host);
    other.mutation("note.created", payload_n(7), 1, now_ms());
    // A barrier (the row is in the shared file); the sender's tick may
    // already have sent it, so the count is 1 or 0.
    const int64_t pending = other.pending();
    BOOST_TEST((pending == 0 || pending == 1), "pending " << pending);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stat(sender.stats(), "/delivered") < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  BOOST_TEST(stat(sender.stats(), "/delivered") == 1);
}

BOOST_AUTO_TEST_CASE(setting_changes_take_effect_in_bus_order) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  std::vector<int> expected;
  for (int n = 0; n < 60; ++n) {
    const bool enabled = n % 3 != 1;  // a change before (almost) every mutation
    host.set_setting("analytics_enabled", enabled ? "true" : "false");
    host.mutate("note.created", payload_n(n));
    if (enabled) expected.push_back(n);
  }
  BOOST_TEST(host.pending().value_or(-1) == static_cast<int64_t>(expected.size()));
  BOOST_TEST(ns_of(Db(queue_file(dir)).rows()) == expected, boost::test_tools::per_element());
  BOOST_TEST(analytics_stat(host, "/dropped/disabled") == 20);
}

BOOST_AUTO_TEST_CASE(an_initial_false_setting_records_nothing) {
  TempDir dir;
  auto o = options(dir);
  o.initial_settings_json["analytics_enabled"] = "false";
  wep::host_stub::Host host(o);
  host.mutate("note.created", payload_n(1));
  BOOST_TEST(host.pending().value_or(-1) == 0);
  BOOST_TEST(analytics_stat(host, "/dropped/disabled") == 1);
  BOOST_TEST((!fs::exists(queue_file(dir)) || Db(queue_file(dir)).rows().empty()));
}

BOOST_AUTO_TEST_CASE(unmapped_types_and_pii_values_are_dropped_and_counted) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  host.mutate("user.logged_in", R"({"email": "jane@example.com"})");  // unmapped: nothing recorded
  host.mutate(
      "note.created",
      R"({"kind": "jane@example.com", "length": "+1 (555) 123-4567", "pinned": "https://x.example/a", "n": "10.0.0.7"})");
  host.mutate("note.created", R"({"kind": "2001:db8::7", "length": "4111111111111111", "pinned": [1], "n": 3})");
  host.mutate("note.created", R"({"kind": ")" + std::string(100, 'x') + R"(", "n": 4})");
  BOOST_TEST(host.pending().value_or(-1) == 3);

  const auto rows = Db(queue_file(dir)).rows();
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(!rows[0].properties.has_value());  // every value was PII: NULL properties
  BOOST_TEST(rows[1].properties.value_or("NULL") == R"({"n":3})");
  BOOST_TEST(rows[2].properties.value_or("NULL") == R"({"n":4})");

  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/dropped/unmapped") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/email") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/phone") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/url") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/ip") == 2);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/long_number") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/pii") == 6);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/type") == 1);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/long_string") == 1);
}

// A date is a digit group like a phone number: dropped as personal data and
// counted; a plain number is kept.
BOOST_AUTO_TEST_CASE(a_date_is_dropped_as_personal_data_and_a_plain_number_kept) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  host.mutate("note.created", R"({"kind": "2024-01-31", "length": 2024, "n": 1})");
  host.mutate("note.created", R"({"kind": "31.01.2024", "n": 2})");
  BOOST_TEST(host.pending().value_or(-1) == 2);

  const auto rows = Db(queue_file(dir)).rows();
  BOOST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0].properties.value_or("NULL") == R"({"length":2024,"n":1})");
  BOOST_TEST(rows[1].properties.value_or("NULL") == R"({"n":2})");
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/phone") == 2);
  BOOST_TEST(stat(stats, "/plugins/analytics/properties_dropped/pii") == 2);
}

BOOST_AUTO_TEST_CASE(the_pseudonymous_id_is_the_user_id_across_restarts) {
  TempDir dir;
  std::string first_id;
  {
    wep::host_stub::Host host(options(dir));
    first_id = host.pseudonymous_id();
    host.mutate("note.deleted");
    host.pending();
  }
  {
    wep::host_stub::Host host(options(dir));
    BOOST_TEST(host.pseudonymous_id() == first_id);
    host.mutate("note.deleted");
    BOOST_TEST(host.pending().value_or(-1) == 2);
  }
  Db db(queue_file(dir));
  BOOST_TEST(db.integer("SELECT count(*) FROM analytics_queue WHERE user_id = '" + first_id + "'") == 2);
  BOOST_TEST(first_id.size() == 36u);  // a UUID, not a token
}

BOOST_AUTO_TEST_CASE(restart_keeps_the_queue) {
  TempDir dir;
  {
    wep::host_stub::Host host(options(dir));
    for (int n = 1; n <= 5; ++n) host.mutate("note.created", payload_n(n));
  }  // shutdown stores everything accepted
  wep::host_stub::Host host(options(dir));
  BOOST_TEST(host.pending().value_or(-1) == 5);
  host.mutate("note.created", payload_n(6));
  BOOST_TEST(host.pending().value_or(-1) == 6);
  const auto rows = Db(queue_file(dir)).rows();
  BOOST_TEST((ns_of(rows) == std::vector<int>{1, 2, 3, 4, 5, 6}));
  BOOST_TEST(rows.back().id == 6);
}

BOOST_AUTO_TEST_CASE(rows_past_retention_age_out_at_start) {
  TempDir dir;
  {
    wep::host_stub::Host host(options(dir));
    for (int n = 1; n <= 6; ++n) host.mutate("note.created", payload_n(n));
  }
  {
    Db db(queue_file(dir));  // rows 2 and 5 are 40 days old, row 3 is 29 days old
    db.exec(
        "UPDATE analytics_queue SET created_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', '-40 days') "
        "WHERE id IN (2, 5)");
    db.exec("UPDATE analytics_queue SET created_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', '-29 days') WHERE id = 3");
  }
  wep::host_stub::Host host(options(dir));
  BOOST_TEST(host.pending().value_or(-1) == 4);
  BOOST_TEST(analytics_stat(host, "/aged_out") == 2);
  BOOST_TEST((ns_of(Db(queue_file(dir)).rows()) == std::vector<int>{1, 3, 4, 6}));
}

BOOST_AUTO_TEST_CASE(rows_age_out_periodically_also_while_disabled) {
  TempDir dir;
  wep::host_stub::Host host(options(dir, R"(, "retention_days": 7, "maintenance_interval_ms": 20)"));
  host.mutate("note.created", payload_n(1));
  BOOST_TEST(host.pending().value_or(-1) == 1);
  host.set_setting("analytics_enabled", "false");
  {
    // Another writer adds an 8-day-old row (keeping the counter in step, as
    // every writer of the queue must).
    Db db(queue_file(dir));
    db.exec(
        "BEGIN IMMEDIATE; INSERT INTO analytics_queue (event_type, created_at) VALUES "
        "('old', strftime('%Y-%m-%dT%H:%M:%f', 'now', '-8 days')); "
        "UPDATE analytics_queue_count SET pending = pending + 1; COMMIT;");
  }
  BOOST_TEST(host.pending().value_or(-1) == 2);
  // The next maintenance pass removes it (the count drops, then the counter
  // of aged-out rows goes up): wait for that condition.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (analytics_stat(host, "/aged_out") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  BOOST_TEST(analytics_stat(host, "/aged_out") == 1);
  BOOST_TEST(host.pending().value_or(-1) == 1);
  BOOST_TEST((ns_of(Db(queue_file(dir)).rows()) == std::vector<int>{1}));
}

BOOST_AUTO_TEST_CASE(the_cap_keeps_the_newest_rows) {
  TempDir dir;
  wep::host_stub::Host host(options(dir, R"(, "max_queue_rows": 10)"));
  for (int n = 0; n < 25; ++n) {
    host.mutate("note.created", payload_n(n));
    if (n % 7 == 0) host.pending();  // several writer batches, not one
  }
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(analytics_stat(host, "/dropped/queue_cap") == 15);
  std::vector<int> newest;
  for (int n = 15; n < 25; ++n) newest.push_back(n);
  BOOST_TEST(ns_of(Db(queue_file(dir)).rows()) == newest, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_throwing_effect_does_not_change_results) {
  TempDir dir;
  wep::host_stub::Host host(options(dir, "", {{TEST_EFFECT_PLUGIN_PATH, R"({"throw_on_event": true})"}}));
  std::vector<int64_t> sequences;
  for (int n = 0; n < 20; ++n) sequences.push_back(host.mutate("note.created", payload_n(n)));
  for (size_t i = 1; i < sequences.size(); ++i) BOOST_TEST(sequences[i] == sequences[i - 1] + 1);
  BOOST_TEST(host.pending().value_or(-1) == 20);
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/test_effect/thrown") == 20);
  BOOST_TEST(stat(stats, "/plugins/analytics/stored") == 20);
}

BOOST_AUTO_TEST_CASE(a_slow_effect_does_not_change_results) {
  TempDir dir;
  wep::host_stub::Host host(options(dir, "", {{TEST_EFFECT_PLUGIN_PATH, R"({"sleep_on_event_ms": 20})"}}));
  std::vector<int64_t> sequences;
  for (int n = 0; n < 10; ++n) sequences.push_back(host.mutate("note.created", payload_n(n)));
  for (size_t i = 1; i < sequences.size(); ++i) BOOST_TEST(sequences[i] == sequences[i - 1] + 1);
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(analytics_stat(host, "/stored") == 10);
}

BOOST_AUTO_TEST_CASE(many_threads_mutating_lose_nothing) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> sequences(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        sequences[t].push_back(host.mutate("note.created", payload_n(t * kPerThread + i)));
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(host.pending().value_or(-1) == kThreads * kPerThread);

  std::set<int64_t> unique_sequences;
  for (const auto& s : sequences) unique_sequences.insert(s.begin(), s.end());
  BOOST_TEST(unique_sequences.size() == static_cast<size_t>(kThreads * kPerThread));
  auto ns = ns_of(Db(queue_file(dir)).rows());
  std::sort(ns.begin(), ns.end());
  std::vector<int> all(kThreads * kPerThread);
  std::iota(all.begin(), all.end(), 0);
  BOOST_TEST(ns == all);
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/dropped/buffer_full") == 0);
  BOOST_TEST(stat(stats, "/plugins/analytics/stored") == kThreads * kPerThread);
}

BOOST_AUTO_TEST_CASE(the_command_protocol_answers_from_the_plugin) {
  TempDir dir;
  wep::host_stub::Host host(options(dir));
  wep::host_stub::CommandInterpreter commands(host);
  bool quit = false;
  BOOST_TEST(commands.execute(R"(mutate note.created {"kind": "text", "n": 1})", quit).rfind("ok ", 0) == 0u);
  BOOST_TEST(commands.execute("mutate note.deleted", quit).rfind("ok ", 0) == 0u);
  BOOST_TEST(commands.execute("pending", quit) == "pending 2");
  BOOST_TEST(commands.execute("wait-delivered 50", quit) == "pending 2");  // no transport: nothing leaves
  const std::string stats = commands.execute("stats", quit);
  BOOST_TEST(stat(stats, "/plugins/analytics/pending") == 2);
  BOOST_TEST(stat(stats, "/plugins/analytics/stored") == 2);
  BOOST_TEST(commands.execute("set analytics_enabled false", quit) == "ok");
  commands.execute("mutate note.deleted", quit);
  BOOST_TEST(commands.execute("pending", quit) == "pending 2");
  BOOST_TEST(!quit);
}

// "transport.plugin": "libwep_ndjson.so" is the ndjson transport next to the
// analytics plugin file (build/plugins), whatever the working folder.
BOOST_AUTO_TEST_CASE(a_relative_transport_plugin_is_loaded_from_the_analytics_plugin_folder) {
  BOOST_TEST_REQUIRE(fs::path(WEP_ANALYTICS_PATH).parent_path() == fs::path(WEP_NDJSON_PATH).parent_path());
  BOOST_TEST_REQUIRE(fs::path(WEP_NDJSON_PATH).filename() == "libwep_ndjson.so");
  TempDir dir;
  // Not found from the working folder: only the plugin's folder can supply it.
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path());
  struct Restore {
    fs::path folder;
    ~Restore() { fs::current_path(folder); }
  } restore{previous};
  BOOST_TEST_REQUIRE(!fs::exists("libwep_ndjson.so"));

  wep::host_stub::Host host(
      options(dir, R"(, "flush_interval_ms": 10,)"
                   R"("transport": {"plugin": "libwep_ndjson.so", "config": {"path": "out.ndjson", "fsync": false}})"));
  for (int n = 1; n <= 3; ++n) host.mutate("note.created", payload_n(n));
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(std::chrono::seconds(30)).value_or(-1) == 0);
  std::ifstream delivered(dir / "host/plugins/analytics/transport/out.ndjson");
  int lines = 0;
  for (std::string line; std::getline(delivered, line);) ++lines;
  BOOST_TEST(lines == 3);
}

BOOST_AUTO_TEST_CASE(a_bad_config_is_refused_at_start_naming_the_key) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"batch_size": -1})", "/batch_size"},
      {R"({"backoff": {"initial_ms": 10, "max_ms": 5}})", "/backoff/initial_ms"},
      {R"({"events": {"x": {"event_type": 5}}})", "/events/x/event_type"},
      {R"({"transport": {"plugin": "/nonexistent/libnothing.so"}})", "/transport/plugin"},
  };
  for (const auto& [config, key] : cases) {
    TempDir dir;
    wep::host_stub::HostOptions o;
    o.data_dir = dir / "host";
    o.plugins.push_back({WEP_ANALYTICS_PATH, config});
    try {
      wep::host_stub::Host host(o);
      BOOST_ERROR("accepted " << config);
    } catch (const wep::host_stub::HostError& e) {
      BOOST_TEST_INFO(e.what());
      BOOST_TEST(std::string(e.what()).find("analytics config: " + key) != std::string::npos);
    }
  }
}
