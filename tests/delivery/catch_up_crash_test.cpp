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
#include <thread>
#include <vector>
#include <wep/test/child_process.hpp>
#include <wep/test_backend/backend.hpp>

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

// Whether a start-up catch-up holds rows in the queue file (it was cut
// short) and the checkpoint's last mutation.
std::pair<bool, int64_t> catch_up_position(const std::filesystem::path& queue_db) {
  sqlite3* db = nullptr;
  std::pair<bool, int64_t> position{false, -1};
  if (sqlite3_open(queue_db.c_str(), &db) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT hold_from_id IS NOT NULL, last_sequence FROM analytics_checkpoint", -1, &stmt,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      position = {sqlite3_column_int(stmt, 0) != 0, sqlite3_column_int64(stmt, 1)};
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return position;
}

// How many times the plugin has logged the start of a catch-up in `log`.
size_t catch_up_starts(const std::filesystem::path& log) {
  size_t starts = 0;
  for (const std::string& line : read_lines(log))
    starts += line.find("catching up from the host's event log") != std::string::npos;
  return starts;
}

// Commits mutations {"n":first} .. {"n":last} to the host's event log
// directly, in one transaction, as the host's own writer would while the
// plugin is not running.
void append_backlog(const std::filesystem::path& host_db, int64_t first, int64_t last) {
  sqlite3* db = nullptr;
  BOOST_TEST_REQUIRE(sqlite3_open(host_db.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  BOOST_TEST_REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events(type, payload, committed_at) VALUES('note.created', ?1, ?2)", -1, &insert,
                     nullptr);
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();  // within the retention window
  for (int64_t n = first; n <= last; ++n) {
    const std::string text = payload(n);
    sqlite3_bind_text(insert, 1, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 2, now_ms);
    BOOST_TEST_REQUIRE(sqlite3_step(insert) == SQLITE_DONE);
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  BOOST_TEST_REQUIRE(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
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

// A backlog large enough that the catch-up copies the queue's WAL on a thread
// of its own (over 32,768 mutations), cut by SIGKILL at random moments of
// its catch-up, three times: each next start goes on from the checkpoint,
// and the queue ends with every mutation exactly once.
BOOST_AUTO_TEST_CASE(sigkill_during_a_large_catch_up_loses_and_repeats_nothing) {
  const uint64_t seed = seed_from_environment();
  std::cout << "large catch-up crash test: seed " << seed << " (replay with WEP_CRASH_SEED=" << seed << ")"
            << std::endl;
  std::mt19937_64 random(seed);
  constexpr int64_t kBacklogStep = 50000;
  TempDir dir("wep-large-catch-up-crash");
  const std::filesystem::path data_dir = dir.path() / "data";
  const std::filesystem::path config_file = dir.path() / "host-stub.json";
  wep::test::Backend backend;  // the host stays offline: the rows stay in the queue, where the test counts them
  std::ofstream(config_file) << host_stub_config(data_dir, backend);
  const std::filesystem::path child_log = dir.path() / "host-stub.log";
  {
    // The first start: the files, and the checkpoint at the (empty) log's end.
    ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
    BOOST_TEST_REQUIRE(child.command("pending") == "pending 0");
    BOOST_TEST_REQUIRE(child.command("quit") == "bye");
    BOOST_TEST_REQUIRE(child.wait_exit(30s).value_or(-1) == 0);
  }
  // Lives killed until three died inside a catch-up that had stored some
  // rows (still held) but not reached the log's end, at most 40. The moment
  // is random below a bound that halves when a life got to the end and
  // doubles when it died before storing anything (start-up and catch-up
  // times vary, e.g. under a sanitizer). Whenever a life got to the end,
  // another backlog is committed while the host is down.
  int64_t logged = 0;
  int landed = 0, lives = 0;
  int64_t max_wait_ms = 80;
  for (; lives < 40 && landed < 3; ++lives) {
    const int64_t before = catch_up_position(analytics_db(data_dir)).second;
    if (before == logged) {
      append_backlog(data_dir / "host.db", logged + 1, logged + kBacklogStep);
      logged += kBacklogStep;
    }
    const size_t starts_before = catch_up_starts(child_log);
    ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
    BOOST_TEST_REQUIRE(eventually([&] { return catch_up_starts(child_log) > starts_before; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(random() % max_wait_ms)));
    child.kill_hard();
    const auto [held, checkpoint] = catch_up_position(analytics_db(data_dir));
    if (checkpoint >= logged) {
      max_wait_ms = std::max<int64_t>(10, max_wait_ms / 2);
    } else if (checkpoint == before) {
      max_wait_ms = std::min<int64_t>(5000, max_wait_ms * 2);
    } else if (held) {
      ++landed;
    }
  }
  std::cout << "large catch-up crash test: " << lives << " lives killed, " << landed << " inside the catch-up"
            << std::endl;
  BOOST_TEST(landed == 3);
  ChildProcess child(HOST_STUB_PATH, {"--config", config_file.string()}, child_log);
  BOOST_TEST(child.command("pending", 120s) == "pending " + std::to_string(logged));  // waits for the catch-up
  BOOST_TEST(child.command("quit") == "bye");
  BOOST_TEST(child.wait_exit(30s).value_or(-1) == 0);
  std::map<int64_t, int> counts;
  for (const int64_t n : queued_ns(analytics_db(data_dir))) ++counts[n];
  int missing = 0, duplicated = 0;
  for (int64_t n = 1; n <= logged; ++n) {
    const auto it = counts.find(n);
    if (it == counts.end()) {
      ++missing;
    } else if (it->second > 1) {
      ++duplicated;
    }
  }
  std::cout << "large catch-up crash test: " << logged << " mutations: " << missing << " missing, " << duplicated
            << " duplicated" << std::endl;
  BOOST_TEST(missing == 0);
  BOOST_TEST(duplicated == 0);
  BOOST_TEST(counts.size() == static_cast<size_t>(logged));
}
