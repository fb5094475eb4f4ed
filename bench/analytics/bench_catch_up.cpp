// bench_catch_up: the analytics plugin catching up from the host stub's real
// event log (host.db, read in streamed chunks) against its normal store
// rate, in the same run, and the memory the catch-up takes. Prints one
// figure per line:
//   - catch-up events/s: N logged mutations processed from the checkpoint
//     0 (load until the pending barrier, which waits for the catch-up), median
//     of the rounds with min..max;
//   - normal store events/s: the same N events handed live to the plugin
//     through on_event (a fresh queue file each round; the hand-off buffer
//     holds them all, so none is dropped or left to a log) until the
//     pending barrier, median with min..max; and the ratio of the medians;
//   - RSS before the catch-up and the peak sampled during it (every 5 ms),
//     and the same peak during the normal-store runs.
// Not run by CTest. Usage: bench_catch_up [log_events] [rounds]
// (defaults 1000000 and 3).
#include <Poco/TemporaryFile.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <wep/bench/plugin_driver.hpp>
#include <wep/host_stub/host.hpp>

using wep::bench::now_ms;
using wep::bench::PluginDriver;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kConfig =
    R"({"events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length", "pinned"]}}, )"
    R"("buffer_capacity": 2000000})";
constexpr const char* kPayload = R"({"kind":"text","length":1234,"pinned":false,"title":"free text that is not kept"})";

long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(line.find(':') + 1));
  }
  return -1;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void rate_line(const char* name, const std::vector<double>& values) {
  std::printf("%s: %.0f events/s (median of %zu; min %.0f, max %.0f)\n", name, median(values), values.size(),
              *std::min_element(values.begin(), values.end()), *std::max_element(values.begin(), values.end()));
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::fprintf(stderr, "sqlite: %s: %s\n", sql, error ? error : "?");
    std::exit(1);
  }
}

// Appends `count` mutations to the host's event log in one transaction (the
// host stub made the file; this only fills it faster than `mutate` would).
void fill_event_log(const std::filesystem::path& host_db, int count) {
  sqlite3* db = nullptr;
  sqlite3_open(host_db.c_str(), &db);
  exec(db, "BEGIN");
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events(type, payload, committed_at) VALUES('note.created', ?1, ?2)", -1, &insert,
                     nullptr);
  const int64_t at = now_ms();
  for (int i = 0; i < count; ++i) {
    sqlite3_bind_text(insert, 1, kPayload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(insert, 2, at + i / 1000);
    sqlite3_step(insert);
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  exec(db, "COMMIT");
  sqlite3_close(db);
}

// Empties the plugin's queue and moves its checkpoint back to the start.
// VACUUM gives the pages of the deleted rows back, so that every round
// stores into a compact file as the normal-store runs do (each in a fresh
// one), not into a million free pages.
void rewind_queue(const std::filesystem::path& queue_db) {
  sqlite3* db = nullptr;
  sqlite3_open(queue_db.c_str(), &db);
  exec(db,
       "BEGIN; DELETE FROM analytics_queue; UPDATE analytics_queue_count SET pending = 0; "
       "UPDATE analytics_checkpoint SET last_sequence = 0, enabled = 1, hold_from_id = NULL; COMMIT; VACUUM; "
       "PRAGMA wal_checkpoint(TRUNCATE);");
  sqlite3_close(db);
}

// Samples VmRSS until stopped; peak() is the largest sample.
class RssSampler {
 public:
  RssSampler()
      : thread_([this] {
          while (!stop_.load()) {
            peak_.store(std::max(peak_.load(), status_kb("VmRSS")));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  ~RssSampler() { finish(); }
  long finish() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return peak_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  const int log_events = argc > 1 ? std::max(1000, std::atoi(argv[1])) : 1000000;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
  const int live_events = log_events;  // the same work as the catch-up
  Poco::TemporaryFile temp_dir;        // removed with everything in it at exit
  temp_dir.createDirectories();
  const std::filesystem::path dir = temp_dir.path();
  const std::filesystem::path data_dir = dir / "host";
  wep::host_stub::HostOptions options;
  options.data_dir = data_dir;
  { wep::host_stub::Host make_the_files(options); }
  fill_event_log(data_dir / "host.db", log_events);
  const std::filesystem::path queue_db = data_dir / "plugins" / "analytics" / "analytics.db";
  std::printf("log_events: %d\nlive_events_per_normal_run: %d\n", log_events, live_events);

  std::vector<double> catch_up_rates, store_rates;
  long rss_before_catch_up = 0, peak_catch_up = 0, peak_store = 0;
  for (int round = 0; round < rounds; ++round) {
    // The plugin's normal store rate: live events through on_event.
    {
      PluginDriver plugin(WEP_ANALYTICS_PATH, kConfig, dir / ("live" + std::to_string(round)), "user");
      RssSampler sampler;
      const auto start = Clock::now();
      for (int i = 0; i < live_events; ++i) plugin.mutation("note.created", kPayload, i + 1, now_ms());
      const int64_t stored = plugin.pending();
      store_rates.push_back(static_cast<double>(stored) / seconds_since(start));
      if (stored != live_events) {
        std::fprintf(stderr, "normal store stored %lld rows, expected %d\n", static_cast<long long>(stored),
                     live_events);
        return 1;
      }
      peak_store = std::max(peak_store, sampler.finish());
    }
    // Catch-up: the same plugin file in the host stub, checkpoint at 0.
    {
      wep::host_stub::Host host(options);
      if (round == 0) {  // a first start sets the checkpoint at the end of the log
        host.load_plugin(WEP_ANALYTICS_PATH, kConfig);
        host.unload_plugin("analytics");
      }
      rewind_queue(queue_db);
      rss_before_catch_up = std::max(rss_before_catch_up, status_kb("VmRSS"));
      RssSampler sampler;
      const auto start = Clock::now();
      host.load_plugin(WEP_ANALYTICS_PATH, kConfig);
      const int64_t stored = host.pending().value_or(-1);
      const double seconds = seconds_since(start);
      peak_catch_up = std::max(peak_catch_up, sampler.finish());
      if (stored != log_events) {
        std::fprintf(stderr, "catch-up stored %lld rows, expected %d\n", static_cast<long long>(stored), log_events);
        return 1;
      }
      catch_up_rates.push_back(log_events / seconds);
      host.unload_plugin("analytics");
    }
  }
  rate_line("catch_up_events_per_s", catch_up_rates);
  rate_line("normal_store_events_per_s", store_rates);
  std::printf("catch_up_vs_normal_store: %.0f %%\n", 100.0 * median(catch_up_rates) / median(store_rates));
  std::printf("rss_before_catch_up: %ld kB\n", rss_before_catch_up);
  std::printf("peak_rss_during_catch_up: %ld kB\n", peak_catch_up);
  std::printf("peak_rss_during_normal_store: %ld kB\n", peak_store);
  return 0;
}
