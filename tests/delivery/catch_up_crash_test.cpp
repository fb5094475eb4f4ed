// The catch-up crash test: the real `host-stub` executable (analytics plugin
// + supabase transport over real HTTPS to the loopback backend in this
// process) is killed with SIGKILL at random instants -- right after an
// `ok N` answer, in a burst of unanswered mutations, during the catch-up of
// the next start, while delivering, and around a change of
// analytics_enabled -- and restarted on the same data dir each time. At the
// end it is enabled, online, and waits until everything is delivered.
//
// The oracle is the host's own event log (host.db): walking its mutations
// and setting changes in order gives, for every committed mutation, whether
// it was committed while analytics was enabled and whether it was turned off
// since. Then:
//   - every mutation answered `ok`, committed while enabled and not turned
//     off since, is at the server exactly once;
//   - no mutation committed while disabled is there;
//   - nothing is there twice, and nothing that was never committed.
//
// Kills: WEP_CATCH_UP_KILLS (default 10, what CI runs). The seed is printed;
// replay a run with WEP_CRASH_SEED=<seed>.
#define BOOST_TEST_MODULE delivery_catch_up_crash
#include <sqlite3.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <wep/test_backend/backend.hpp>
#include <thread>
#include <vector>
#include <wep/test/child_process.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using wep::test::ChildProcess;
using namespace std::chrono_literals;

namespace {

int kills_from_environment() {
  if (const char* text = std::getenv("WEP_CATCH_UP_KILLS")) return std::max(1, std::atoi(text));
  return 10;
}

uint64_t seed_from_environment() {
  if (const char* text = std::getenv("WEP_CRASH_SEED")) return std::strtoull(text, nullptr, 10);
  return std::random_device{}();
}

std::string host_stub_config(const std::filesystem::path& data_dir, const wep::test::Backend& backend) {
  AnalyticsOptions analytics;
  analytics.transport_plugin = WEP_SUPABASE_PATH;
  analytics.batch_size = 50;
  analytics.flush_interval_ms = 5;
  analytics.backoff_initial_ms = 5;
  analytics.backoff_max_ms = 100;
  analytics.transport_config_json =
      supabase_config_json(backend.url(), backend.api_key(), wep::test::test_certificates().ca_file);
  return host_stub_config_json(data_dir, WEP_ANALYTICS_PATH, analytics);
}

// What the host's log says about each committed mutation (by its "n").
struct Oracle {
  std::set<int64_t> must_arrive;  // committed while enabled, not turned off since
  std::set<int64_t> may_arrive;   // committed while enabled, turned off since
  std::set<int64_t> must_not;     // committed while disabled
  int64_t committed = 0;
  int setting_changes = 0;
};

Oracle read_oracle(const std::filesystem::path& host_db) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(host_db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    throw std::runtime_error("cannot open " + host_db.string());
  }
  struct Entry {
    int64_t position;
    int order;  // setting changes after mutation `position` come after it
    int64_t id;
    std::string text;
  };
  std::vector<Entry> log;
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT sequence, json_extract(payload, '$.n') FROM events", -1, &stmt, nullptr);
  while (sqlite3_step(stmt) == SQLITE_ROW)
    log.push_back({sqlite3_column_int64(stmt, 0), 0, sqlite3_column_int64(stmt, 1), ""});
  sqlite3_finalize(stmt);
  sqlite3_prepare_v2(db, "SELECT after_sequence, id, value_json FROM setting_changes WHERE key = 'analytics_enabled'",
                     -1, &stmt, nullptr);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    log.push_back({sqlite3_column_int64(stmt, 0), 1, sqlite3_column_int64(stmt, 1),
                   reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2))});
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  std::sort(log.begin(), log.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.position, a.order, a.id) < std::tie(b.position, b.order, b.id);
  });
  Oracle oracle;
  bool enabled = true;  // the built-in default; the config sets none
  std::set<int64_t> enabled_since_last_off;
  for (const Entry& entry : log) {
    if (entry.order == 1) {
      ++oracle.setting_changes;
      enabled = entry.text == "true";
      if (!enabled) {
        oracle.may_arrive.insert(enabled_since_last_off.begin(), enabled_since_last_off.end());
        enabled_since_last_off.clear();
      }
      continue;
    }
    ++oracle.committed;
    if (enabled) {
      enabled_since_last_off.insert(entry.id);
    } else {
      oracle.must_not.insert(entry.id);
    }
  }
  oracle.must_arrive = std::move(enabled_since_last_off);
  return oracle;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigkill_anywhere_loses_no_committed_enabled_mutation_and_records_none_twice) {
  const int kills = kills_from_environment();
  const uint64_t seed = seed_from_environment();
  std::cout << "catch-up crash test: " << kills << " kills, seed " << seed << " (replay with WEP_CRASH_SEED=" << seed
            << " WEP_CATCH_UP_KILLS=" << kills << ")" << std::endl;
  std::mt19937_64 random(seed);
  auto below = [&](int bound) { return static_cast<int>(random() % static_cast<uint64_t>(bound)); };

  wep::test::Backend backend;
  TempDir dir("wep-catch-up-crash");
  const std::filesystem::path data_dir = dir.path() / "data";
  const std::filesystem::path config_file = dir.path() / "host-stub.json";
  std::ofstream(config_file) << host_stub_config(data_dir, backend);
  const std::filesystem::path child_log = dir.path() / "host-stub.log";

  int64_t next_n = 1;
  std::set<int64_t> answered;  // every n whose mutate was answered `ok N`
  bool enabled = true;         // the last value the test set
  std::map<std::string, int> kinds;

  auto mutate = [&](ChildProcess& child) {
    const int64_t n = next_n++;
    const std::string answer = child.command("mutate note.created " + payload(n));
    BOOST_TEST_REQUIRE(answer.rfind("ok ", 0) == 0u, answer);
    answered.insert(n);
  };
  auto toggle = [&](ChildProcess& child) {
    enabled = !enabled;
    BOOST_TEST_REQUIRE(child.command(std::string("set analytics_enabled ") + (enabled ? "true" : "false")) == "ok");
  };

  for (int kill = 0; kill < kills; ++kill) {
    ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
    if (below(100) < 15) backend.fail_next(1, 503);
    const int kind = below(5);
    if (kind == 2) {
      // Dies during the catch-up of what the last life left unprocessed.
      ++kinds["during catch-up at start"];
      std::this_thread::sleep_for(std::chrono::microseconds(below(20000)));
      child.kill_hard();
      continue;
    }
    BOOST_TEST_REQUIRE(child.command("online") == "ok");
    if (!enabled && below(100) < 60) toggle(child);  // mostly back on, so most lives record something
    for (int i = 0, count = below(60); i < count; ++i) {
      if (below(100) < 1) toggle(child);
      mutate(child);
    }
    switch (kind) {
      case 0:  // right after an `ok N` answer
        ++kinds["right after ok N"];
        mutate(child);
        break;
      case 1:  // a burst of unanswered mutations: a backlog for the next start
        ++kinds["in a burst of unanswered mutations"];
        for (int i = 0, count = 200 + below(2000); i < count; ++i) {
          child.write_line("mutate note.created " + payload(next_n++));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(below(30000)));
        break;
      case 3:  // while delivering
        ++kinds["while delivering"];
        child.write_line("wait-delivered 10000");
        std::this_thread::sleep_for(std::chrono::microseconds(below(30000)));
        break;
      case 4:  // around a setting change
        ++kinds["around a setting change"];
        enabled = !enabled;
        child.write_line(std::string("set analytics_enabled ") + (enabled ? "true" : "false"));
        for (int i = 0, count = below(5); i < count; ++i) child.write_line("mutate note.created " + payload(next_n++));
        std::this_thread::sleep_for(std::chrono::microseconds(below(3000)));
        break;
    }
    child.kill_hard();
  }

  // One more death right after `ok N`, enabled, so that something must arrive
  // whatever the random lives did with the setting.
  {
    ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
    if (!enabled) toggle(child);
    for (int i = 0; i < 50; ++i) mutate(child);
    child.kill_hard();
  }

  // The last life: enabled and online until everything is delivered.
  backend.clear_faults();
  {
    ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
    BOOST_TEST_REQUIRE(child.command("set analytics_enabled true") == "ok");
    BOOST_TEST_REQUIRE(child.command("online") == "ok");
    BOOST_TEST(child.command("wait-delivered 120000", 150s) == "pending 0");
    BOOST_TEST(child.command("quit") == "bye");
    BOOST_TEST(child.wait_exit(30s).value_or(-1) == 0);
  }

  const Oracle oracle = read_oracle(data_dir / "host.db");
  std::map<int64_t, int> arrivals;
  for (const auto& row : backend.rows()) ++arrivals[n_of(row.properties_json)];
  int missing = 0, duplicated = 0, recorded_while_disabled = 0, unexpected = 0, answered_missing = 0;
  for (int64_t n : oracle.must_arrive) {
    if (!arrivals.count(n)) ++missing;
  }
  for (int64_t n : answered) {
    if (oracle.must_arrive.count(n) && !arrivals.count(n)) ++answered_missing;
  }
  for (const auto& [n, count] : arrivals) {
    if (count > 1) ++duplicated;
    if (oracle.must_not.count(n)) ++recorded_while_disabled;
    if (!oracle.must_arrive.count(n) && !oracle.may_arrive.count(n)) ++unexpected;
  }
  std::cout << "catch-up crash test: " << kills << " kills (";
  for (const auto& [kind, count] : kinds) std::cout << count << " " << kind << ", ";
  std::cout << "), " << oracle.committed << " mutations committed (" << answered.size() << " answered ok), "
            << oracle.setting_changes << " setting changes, " << oracle.must_arrive.size() << " must arrive, "
            << oracle.may_arrive.size() << " may (turned off since), " << oracle.must_not.size()
            << " committed while disabled; " << arrivals.size() << " arrived: " << missing << " missing, " << duplicated
            << " duplicated, " << recorded_while_disabled << " recorded while disabled" << std::endl;
  BOOST_TEST(missing == 0);
  BOOST_TEST(answered_missing == 0);
  BOOST_TEST(duplicated == 0);
  BOOST_TEST(recorded_while_disabled == 0);
  BOOST_TEST(unexpected == 0);
  // The run really exercised something.
  BOOST_TEST(oracle.must_arrive.size() > 0u);
  BOOST_TEST(oracle.must_arrive.size() + oracle.may_arrive.size() > 100u);
  for (const std::string& why : backend.contract_violations()) {
    BOOST_TEST(why.rfind("body is not valid JSON", 0) == 0u, why);  // a request cut by SIGKILL
  }
}
