// Catch-up from the host's event log: the analytics plugin in the host stub
// (the real event log in host.db) and against a host double whose log is in
// memory. Every row carries the mutation's counter "n", so each test knows
// exactly which mutations were recorded.
#define BOOST_TEST_MODULE analytics_catch_up
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <wep/host_stub/host.hpp>

#include "queue_store.hpp"
#include "test_support.hpp"

using wep::test::Db;
using wep::test::DirectHost;
using wep::test::LoadedPlugin;
using wep::test::stat;
using wep::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string config(int buffer_capacity = 65536, int maintenance_interval_ms = 60000) {
  return R"({"events": {"note.created": {"event_type": "note_created", "properties": ["n"]}}, "buffer_capacity": )" +
         std::to_string(buffer_capacity) + R"(, "maintenance_interval_ms": )" +
         std::to_string(maintenance_interval_ms) + "}";
}

std::string payload(int64_t n) { return "{\"n\":" + std::to_string(n) + "}"; }

// n -> how many rows carry it, read from the queue file.
std::map<int64_t, int> recorded(const fs::path& database) {
  Db db(database, SQLITE_OPEN_READONLY);
  std::map<int64_t, int> counts;
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db.handle(), "SELECT json_extract(properties, '$.n') FROM analytics_queue", -1, &stmt, nullptr);
  while (sqlite3_step(stmt) == SQLITE_ROW) ++counts[sqlite3_column_int64(stmt, 0)];
  sqlite3_finalize(stmt);
  return counts;
}

std::set<int64_t> keys(const std::map<int64_t, int>& counts) {
  std::set<int64_t> out;
  for (const auto& [n, count] : counts) {
    BOOST_TEST(count == 1, "n " << n << " recorded " << count << " times");
    out.insert(n);
  }
  return out;
}

// Polls `condition` (another thread's progress with nothing to block on).
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::set<int64_t> range(int64_t first, int64_t last) {
  std::set<int64_t> out;
  for (int64_t n = first; n <= last; ++n) out.insert(n);
  return out;
}

// The host stub with the analytics plugin loaded on demand.
struct StubFixture {
  TempDir dir;
  std::unique_ptr<wep::host_stub::Host> host;
  std::string plugin_config = config();

  StubFixture() {
    wep::host_stub::HostOptions options;
    options.data_dir = dir / "data";
    host = std::make_unique<wep::host_stub::Host>(options);
  }
  fs::path database() const { return dir / "data" / "plugins" / "analytics" / "analytics.db"; }
  void load() { host->load_plugin(WEP_ANALYTICS_PATH, plugin_config); }
  void unload() { host->unload_plugin("analytics"); }
  int64_t mutate(int64_t n) { return host->mutate("note.created", payload(n)); }
  void set_enabled(bool enabled) { host->set_setting("analytics_enabled", enabled ? "true" : "false"); }
  // Every mutation committed so far is processed (stored or not).
  void settle() {
    BOOST_REQUIRE(host->pending().has_value());  // the writer's catch-up and queue are behind us
  }
  std::string stats() {
    rapidjson::Document doc;
    doc.Parse(host->stats_json().c_str());
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    doc["plugins"]["analytics"].Accept(writer);
    return buffer.GetString();
  }
};

// A host log in memory: mutations and setting changes in order.
class MemoryEventLog final : public wep::EventLogSource {
 public:
  // Called (on the reading thread) before each mutation is handed to the
  // reader; it may block or throw (a read that fails). Set while no plugin
  // reads.
  std::function<void(int64_t sequence)> before_mutation;

  int64_t append_mutation(std::string type, std::string payload_json) {
    std::lock_guard lock(mutex_);
    entries_.push_back({WEP_EVENT_MUTATION_COMMITTED, ++last_, std::move(type), std::move(payload_json)});
    return last_;
  }
  void append_setting(std::string key, std::string value_json) {
    std::lock_guard lock(mutex_);
    entries_.push_back({WEP_EVENT_SETTING_CHANGED, last_, std::move(key), std::move(value_json)});
  }
  void read_after(int64_t after_sequence, const std::function<bool(const wep::LoggedEvent&)>& visit) const override {
    struct CountFinished {
      const MemoryEventLog& log;
      ~CountFinished() {
        {
          std::lock_guard lock(log.mutex_);
          ++log.reads_finished_;
        }
        log.read_finished_.notify_all();
      }
    } count_finished{*this};
    std::vector<Entry> copy;
    {
      std::lock_guard lock(mutex_);
      copy = entries_;
    }
    for (const Entry& entry : copy) {
      const bool wanted = entry.kind == WEP_EVENT_MUTATION_COMMITTED ? entry.sequence > after_sequence
                                                                     : entry.sequence >= after_sequence;
      if (!wanted) continue;
      wep::LoggedEvent event;
      event.kind = entry.kind;
      event.sequence = entry.sequence;
      if (entry.kind == WEP_EVENT_MUTATION_COMMITTED) {
        if (before_mutation) before_mutation(entry.sequence);
        event.committed_at_ms = wep::test::now_ms();  // within the retention window
        event.type = entry.first;
        event.payload_json = entry.second;
      } else {
        event.setting_key = entry.first;
        event.setting_value_json = entry.second;
      }
      if (!visit(event)) return;
    }
  }
  int64_t last_sequence() const override {
    std::lock_guard lock(mutex_);
    return last_;
  }
  // read_after calls that have returned.
  size_t reads_finished() const {
    std::lock_guard lock(mutex_);
    return reads_finished_;
  }
  bool wait_for_reads_finished(size_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return read_finished_.wait_for(lock, timeout, [&] { return reads_finished_ >= count; });
  }

 private:
  struct Entry {
    uint32_t kind;
    int64_t sequence;
    std::string first, second;
  };
  mutable std::mutex mutex_;
  mutable std::condition_variable read_finished_;
  mutable size_t reads_finished_ = 0;
  std::vector<Entry> entries_;
  int64_t last_ = 0;
};

// A gate one thread waits at until another opens it.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    opened_.wait(lock, [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    opened_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// stats' catch_up.holding.
bool holding(const std::string& stats) {
  rapidjson::Document doc;
  doc.Parse(stats.c_str());
  const rapidjson::Value* value = rapidjson::Pointer("/catch_up/holding").Get(doc);
  BOOST_REQUIRE(value && value->IsBool());
  return value->GetBool();
}

// Rows in the queue file, held or not (the O(1) counter).
int64_t queued_rows(const fs::path& database) { return wep::analytics::QueueStore(database.string()).count(); }

// Rows the flusher would be handed now: what QueueStore::read_after gives.
size_t rows_for_delivery(const fs::path& database) {
  wep::analytics::QueueStore store(database.string());
  std::vector<wep::analytics::QueuedRow> rows;
  store.read_after(0, 100000, size_t{1} << 30, rows);
  return rows.size();
}

// A plugin on an in-memory log whose first start has set the checkpoint
// at 0; the plugin is unloaded again, so a test can fill the log and start
// a catch-up.
struct MemoryLogFixture {
  TempDir dir;
  MemoryEventLog log;
  DirectHost host{config(), dir / "plugin", "user", &log};
  MemoryLogFixture() {
    LoadedPlugin first(WEP_ANALYTICS_PATH, host);
    BOOST_REQUIRE(first.pending() == 0);
  }
  fs::path database() const { return dir / "plugin" / "analytics.db"; }
  void append(int64_t first, int64_t last) {
    for (int64_t n = first; n <= last; ++n) log.append_mutation("note.created", payload(n));
  }
};

// The analytics plugin's host whose settings, read from any thread but the
// one that built it, answer only once open() was called: a plugin thread
// that reads a setting late (as on a loaded machine) reads it after what
// the test did before open().
class LateSettingsHost final : public wep::test::FakeHost {
 public:
  LateSettingsHost(std::string config_json, const fs::path& data_dir, const wep::EventLogSource* event_log)
      : FakeHost("analytics", std::move(config_json), data_dir, "user", Offer::kEverything, event_log) {}
  std::optional<std::string> setting_json(std::string_view key) const override {
    if (std::this_thread::get_id() != owner_) {
      std::unique_lock lock(gate_mutex_);
      gate_opened_.wait(lock, [&] { return open_; });
    }
    return FakeHost::setting_json(key);
  }
  void open() {
    {
      std::lock_guard lock(gate_mutex_);
      open_ = true;
    }
    gate_opened_.notify_all();
  }

 private:
  const std::thread::id owner_ = std::this_thread::get_id();
  mutable std::mutex gate_mutex_;
  mutable std::condition_variable gate_opened_;
  bool open_ = false;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(rows_a_catch_up_stores_are_held_from_delivery_until_it_reaches_the_end, MemoryLogFixture) {
  constexpr int64_t kLogged = 20000;
  append(1, kLogged);
  Gate gate;
  log.before_mutation = [&](int64_t sequence) {
    if (sequence == 18000) gate.wait();
  };
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);  // start() does not wait for the catch-up
    // Two full transactions (8,192 rows each) are stored before the reader
    // waits at mutation 18,000.
    BOOST_TEST(eventually([&] { return queued_rows(database()) >= 16384; }, std::chrono::seconds(30)));
    BOOST_TEST(rows_for_delivery(database()) == 0u);
    BOOST_TEST(holding(plugin.stats()));
    gate.open();
    BOOST_TEST(plugin.pending() == kLogged);  // waits for the catch-up
    BOOST_TEST(rows_for_delivery(database()) == static_cast<size_t>(kLogged));
    BOOST_TEST(!holding(plugin.stats()));
  }
  log.before_mutation = nullptr;
  BOOST_TEST(keys(recorded(database())) == range(1, kLogged));
}

// The catch-up's reader maps a chunk itself, or leaves it to the writer
// when the writer would wait (the first chunk always; later ones as timing
// falls): either way every mutation gets the mapping a live one gets.
BOOST_FIXTURE_TEST_CASE(a_catch_up_maps_unmapped_types_bad_payloads_and_personal_data_as_live_mapping_does,
                        MemoryLogFixture) {
  constexpr int64_t kLogged = 40000;  // several chunks of 8,192
  std::set<int64_t> kept;
  int64_t unmapped = 0, invalid = 0, screened = 0;
  for (int64_t n = 1; n <= kLogged; ++n) {
    if (n % 7 == 0) {
      log.append_mutation("note.archived", payload(n));
      ++unmapped;
    } else if (n % 11 == 0) {
      log.append_mutation("note.created", "{\"n\": " + std::to_string(n));  // cut short
      ++invalid;
    } else if (n % 13 == 0) {
      log.append_mutation("note.created", "{\"n\": \"bob" + std::to_string(n) + "@example.com\"}");
      ++screened;
    } else {
      log.append_mutation("note.created", payload(n));
      kept.insert(n);
    }
  }
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == static_cast<int64_t>(kept.size()) + screened);
  std::map<int64_t, int> rows = recorded(database());
  BOOST_TEST(rows[0] == screened);  // stored without properties (json_extract gives NULL)
  rows.erase(0);
  BOOST_TEST(keys(rows) == kept);
  const std::string stats = plugin.stats();
  BOOST_TEST(stat(stats, "/dropped/unmapped") == unmapped);
  BOOST_TEST(stat(stats, "/dropped/invalid") == invalid);
  BOOST_TEST(stat(stats, "/properties_dropped/email") == screened);
  BOOST_TEST(stat(stats, "/catch_up/replayed") == kLogged);
}

// A large catch-up copies the WAL into the file on a thread of its own and
// starts the WAL over every few chunks: the WAL never holds the whole
// backlog (it would, about as large as the rows it stores, if nothing
// copied it while the writer's own checkpoints are off).
BOOST_FIXTURE_TEST_CASE(a_large_catch_up_keeps_the_queue_wal_well_below_the_rows_it_stores, MemoryLogFixture) {
  constexpr int64_t kLogged = 400000;
  append(1, kLogged);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == kLogged);
  const auto wal_bytes = fs::file_size(database().string() + "-wal");  // its largest: a WAL is reused, not shrunk
  const auto database_bytes = fs::file_size(database());
  BOOST_TEST_MESSAGE("WAL " << wal_bytes << " bytes, database " << database_bytes << " bytes");
  BOOST_TEST(wal_bytes < database_bytes / 2);
  BOOST_TEST(keys(recorded(database())) == range(1, kLogged));
}

BOOST_FIXTURE_TEST_CASE(a_change_to_false_read_late_in_a_catch_up_deletes_the_held_rows, MemoryLogFixture) {
  append(1, 20000);  // more than one transaction: rows are stored (held) before the change is read
  log.append_setting("analytics_enabled", "false");
  append(20001, 20100);  // committed while disabled
  log.append_setting("analytics_enabled", "true");
  append(20101, 20150);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == 50);
  BOOST_TEST(keys(recorded(database())) == range(20101, 20150));
  BOOST_TEST(stat(plugin.stats(), "/catch_up/discarded") >= 8192);
  BOOST_TEST(stat(plugin.stats(), "/dropped/disabled") == 20100);
  BOOST_TEST(rows_for_delivery(database()) == 50u);
}

BOOST_FIXTURE_TEST_CASE(a_catch_up_cut_short_keeps_its_rows_held_through_a_restart, MemoryLogFixture) {
  constexpr int64_t kLogged = 20000;
  append(1, kLogged);
  log.before_mutation = [](int64_t sequence) {
    if (sequence == 18000) throw std::runtime_error("the log cannot be read");  // the read is cut short
  };
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    plugin.pending();
    BOOST_TEST(host.wait_for_log("the host could not read its event log", std::chrono::seconds(10)));
    BOOST_TEST(queued_rows(database()) >= 16384);
    BOOST_TEST(rows_for_delivery(database()) == 0u);
  }
  // The next start goes on holding (both runs' rows) until its catch-up ends.
  Gate gate;
  log.before_mutation = [&](int64_t sequence) {
    if (sequence == 19500) gate.wait();
  };
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    BOOST_TEST(eventually([&] { return stat(plugin.stats(), "/catch_up/replayed") >= 500; }, std::chrono::seconds(30)));
    BOOST_TEST(rows_for_delivery(database()) == 0u);
    gate.open();
    BOOST_TEST(plugin.pending() == kLogged);
    BOOST_TEST(rows_for_delivery(database()) == static_cast<size_t>(kLogged));
  }
  log.before_mutation = nullptr;
  BOOST_TEST(keys(recorded(database())) == range(1, kLogged));
}

BOOST_FIXTURE_TEST_CASE(a_change_to_false_after_a_restart_deletes_what_the_earlier_catch_up_held, MemoryLogFixture) {
  append(1, 20000);
  log.before_mutation = [](int64_t sequence) {
    if (sequence == 18000) throw std::runtime_error("the log cannot be read");
  };
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    plugin.pending();
    BOOST_TEST(host.wait_for_log("the host could not read its event log", std::chrono::seconds(10)));
    BOOST_TEST(queued_rows(database()) >= 16384);
  }
  log.before_mutation = nullptr;
  log.append_setting("analytics_enabled", "false");  // follows every held row: none may be recorded
  log.append_setting("analytics_enabled", "true");
  append(20001, 20001);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == 1);
  BOOST_TEST(keys(recorded(database())) == std::set<int64_t>({20001}));
  BOOST_TEST(stat(plugin.stats(), "/catch_up/discarded") >= 16384);
}

BOOST_FIXTURE_TEST_CASE(analytics_off_at_a_restart_deletes_what_the_earlier_catch_up_held, MemoryLogFixture) {
  append(1, 20000);
  log.before_mutation = [](int64_t sequence) {
    if (sequence == 18000) throw std::runtime_error("the log cannot be read");
  };
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    plugin.pending();
    BOOST_TEST(host.wait_for_log("the host could not read its event log", std::chrono::seconds(10)));
  }
  log.before_mutation = nullptr;
  host.set_setting("analytics_enabled", "false");  // off when the next catch-up starts (not logged)
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == 0);
  BOOST_TEST(recorded(database()).empty());
}

BOOST_FIXTURE_TEST_CASE(first_start_records_from_the_end_of_the_log, StubFixture) {
  for (int n = 1; n <= 5; ++n) mutate(n);  // before the plugin was installed
  load();
  for (int n = 6; n <= 8; ++n) mutate(n);
  settle();
  BOOST_TEST(keys(recorded(database())) == range(6, 8));
  BOOST_TEST(stat(stats(), "/catch_up/checkpoint") == 8);
}

BOOST_FIXTURE_TEST_CASE(mutations_committed_while_the_plugin_was_not_running_are_caught_up_exactly_once, StubFixture) {
  load();
  for (int n = 1; n <= 3; ++n) mutate(n);
  settle();
  unload();  // as if the process had died: the lane and buffer are gone
  for (int n = 4; n <= 10; ++n) mutate(n);
  load();
  settle();
  unload();
  load();  // nothing new: nothing replayed twice
  mutate(11);
  settle();
  BOOST_TEST(keys(recorded(database())) == range(1, 11));
}

BOOST_FIXTURE_TEST_CASE(opt_out_stays_exact_through_a_catch_up_and_privacy_wins, StubFixture) {
  load();
  mutate(1);
  settle();
  unload();
  mutate(2);           // enabled, but turned off later: not recorded (privacy wins)
  set_enabled(false);  //
  mutate(3);           // disabled: never recorded
  set_enabled(true);
  mutate(4);  // enabled and not turned off since: recorded
  load();
  mutate(5);
  settle();
  BOOST_TEST(keys(recorded(database())) == std::set<int64_t>({1, 4, 5}));

  unload();
  mutate(6);
  set_enabled(false);  // off now: nothing from before is recorded later
  load();
  mutate(7);
  settle();
  BOOST_TEST(keys(recorded(database())) == std::set<int64_t>({1, 4, 5}));
  BOOST_TEST(stat(stats(), "/dropped/disabled") == 2);
}

BOOST_FIXTURE_TEST_CASE(live_setting_changes_apply_in_log_order, StubFixture) {
  load();
  settle();  // the start-up catch-up (privacy first) is over: live order from here
  mutate(1);
  set_enabled(false);
  mutate(2);
  set_enabled(true);
  mutate(3);
  settle();
  BOOST_TEST(keys(recorded(database())) == std::set<int64_t>({1, 3}));
}

BOOST_FIXTURE_TEST_CASE(mutations_go_on_during_a_catch_up_and_each_is_recorded_once, StubFixture) {
  load();
  mutate(1);
  settle();
  unload();
  constexpr int kBacklog = 20000;
  for (int n = 2; n <= kBacklog; ++n) mutate(n);
  load();  // returns before the catch-up is done
  for (int n = kBacklog + 1; n <= kBacklog + 500; ++n) mutate(n);
  settle();
  BOOST_TEST(keys(recorded(database())) == range(1, kBacklog + 500));
  BOOST_TEST(stat(stats(), "/catch_up/replayed") >= kBacklog - 1);
}

BOOST_AUTO_TEST_CASE(a_full_buffer_or_lane_loses_nothing_the_log_has) {
  TempDir dir;
  wep::host_stub::HostOptions options;
  options.data_dir = dir / "data";
  options.lane_capacity = 4;  // the host's lane drops too
  wep::host_stub::Host host(options);
  host.load_plugin(WEP_ANALYTICS_PATH, config(/*buffer_capacity=*/2, /*maintenance_interval_ms=*/50));
  constexpr int kMutations = 3000;
  for (int n = 1; n <= kMutations; ++n) host.mutate("note.created", payload(n));
  const fs::path database = dir / "data" / "plugins" / "analytics" / "analytics.db";
  // Drops at the very end show no later gap: the maintenance tick finds them.
  const bool all = eventually(
      [&] {
        host.pending();
        return recorded(database).size() == static_cast<size_t>(kMutations);
      },
      std::chrono::seconds(30));
  BOOST_TEST(all);
  BOOST_TEST(keys(recorded(database)) == range(1, kMutations));
}

// An event the full buffer refuses is mapped again from the log: what its
// mapping dropped is counted once, not once on the lane and once from the log.
BOOST_AUTO_TEST_CASE(an_event_the_full_buffer_leaves_to_the_log_is_counted_once) {
  TempDir dir;
  MemoryEventLog log;
  DirectHost host{config(/*buffer_capacity=*/2), dir / "plugin", "user", &log};
  { LoadedPlugin first(WEP_ANALYTICS_PATH, host); }  // the checkpoint: the end of the (empty) log
  constexpr int kMutations = 200;
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  {
    Db lock(dir / "plugin" / "analytics.db");
    lock.exec("BEGIN IMMEDIATE");  // the writer waits at its first insert: the buffer fills
    for (int n = 1; n <= kMutations; ++n) {
      const std::string value = "{\"n\": \"bob" + std::to_string(n) + "@example.com\"}";  // screened out
      const int64_t sequence = log.append_mutation("note.created", value);
      plugin.mutation("note.created", value, sequence, wep::test::now_ms());
    }
    lock.exec("ROLLBACK");
  }
  BOOST_TEST(plugin.pending() == kMutations);
  const std::string stats = plugin.stats();
  BOOST_TEST(stat(stats, "/catch_up/deferred") > 0);
  BOOST_TEST(stat(stats, "/properties_dropped/email") == kMutations);
  BOOST_TEST(stat(stats, "/properties_dropped/pii") == kMutations);
}

BOOST_AUTO_TEST_CASE(a_live_event_at_or_below_the_checkpoint_is_ignored) {
  TempDir dir;
  MemoryEventLog log;
  DirectHost host(config(), dir / "plugin", "user", &log);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(plugin.pending() == 0);  // the start-up catch-up has run
  for (int n = 1; n <= 3; ++n) {
    const int64_t sequence = log.append_mutation("note.created", payload(n));
    plugin.mutation("note.created", payload(n), sequence, wep::test::now_ms());
  }
  plugin.mutation("note.created", payload(2), 2, wep::test::now_ms());  // a replay of the bus
  plugin.mutation("note.created", payload(3), 3, wep::test::now_ms());
  const int64_t sequence = log.append_mutation("note.created", payload(4));
  plugin.mutation("note.created", payload(4), sequence, wep::test::now_ms());
  BOOST_TEST(plugin.pending() == 4);
  BOOST_TEST(stat(plugin.stats(), "/catch_up/ignored_live") == 2);
  BOOST_TEST(keys(recorded(dir / "plugin" / "analytics.db")) == range(1, 4));
}

BOOST_AUTO_TEST_CASE(a_gap_in_the_live_sequence_is_filled_from_the_log_in_order) {
  TempDir dir;
  MemoryEventLog log;
  DirectHost host(config(), dir / "plugin", "user", &log);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  log.append_mutation("note.created", payload(1));  // never reaches the plugin's bus
  log.append_mutation("note.created", payload(2));
  const int64_t sequence = log.append_mutation("note.created", payload(3));
  plugin.mutation("note.created", payload(3), sequence, wep::test::now_ms());
  BOOST_TEST(plugin.pending() == 3);
  BOOST_TEST(keys(recorded(dir / "plugin" / "analytics.db")) == range(1, 3));
}

// A change made after the plugin's start() read the setting but before it
// subscribed to the bus reaches it only by reading the setting again; the
// start-up catch-up may have read the log before the change was logged. The
// next mutation, committed after the change, must not be recorded.
BOOST_FIXTURE_TEST_CASE(a_change_to_false_made_before_the_plugin_subscribed_applies_to_the_next_mutation,
                        MemoryLogFixture) {
  append(1, 10);
  const size_t reads_before = log.reads_finished();
  host.before_subscribe = [&] {
    BOOST_REQUIRE(log.wait_for_reads_finished(reads_before + 1, std::chrono::seconds(30)));  // the catch-up read
    log.append_setting("analytics_enabled", "false");
    host.set_setting("analytics_enabled", "false");
  };
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  host.before_subscribe = nullptr;
  const int64_t sequence = log.append_mutation("note.created", payload(11));
  plugin.mutation("note.created", payload(11), sequence, wep::test::now_ms());
  BOOST_TEST(plugin.pending() == 10);
  BOOST_TEST(keys(recorded(database())) == range(1, 10));
  BOOST_TEST(stat(plugin.stats(), "/dropped/disabled") == 1);
}

BOOST_AUTO_TEST_CASE(a_host_without_an_event_log_says_crash_catch_up_is_off) {
  TempDir dir;
  DirectHost host(config(), dir / "plugin");
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  BOOST_TEST(host.wait_for_log("crash catch-up is off", std::chrono::seconds(5)));
  const std::string stats = plugin.stats();
  BOOST_TEST(stats.find("\"catch_up\":{\"on\":false,\"checkpoint\":null") != std::string::npos, stats);
  plugin.mutation("note.created", payload(1), 1, wep::test::now_ms());  // still recorded live
  BOOST_TEST(plugin.pending() == 1);
}

BOOST_AUTO_TEST_CASE(a_late_start_up_catch_up_keeps_live_mutations_from_before_an_opt_out) {
  TempDir dir;
  MemoryEventLog log;
  LateSettingsHost host(config(), dir / "plugin", &log);
  {
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    for (int n = 1; n <= 3; ++n) {
      const int64_t sequence = log.append_mutation("note.created", payload(n));
      plugin.mutation("note.created", payload(n), sequence, wep::test::now_ms());
    }
    host.set_setting("analytics_enabled", "false");
    log.append_setting("analytics_enabled", "false");
    plugin.setting("analytics_enabled", "false");
    const int64_t sequence = log.append_mutation("note.created", payload(4));
    plugin.mutation("note.created", payload(4), sequence, wep::test::now_ms());
    host.open();  // a plugin thread waiting for a setting reads "false" now
    BOOST_TEST(plugin.pending() == 3);
    BOOST_TEST(stat(plugin.stats(), "/dropped/disabled") == 1);
  }
  BOOST_TEST(keys(recorded(dir / "plugin" / "analytics.db")) == range(1, 3));
}
