// bench_analytics: loads the real plugin file
// (libanalytics.so) with a minimal in-process host and prints one figure per
// line:
//   - handler latency p50/p99 on the calling thread (on_event through the
//     plugin's vtable, back to back: the worst case for the hand-off);
//   - sustained stored events/s (first on_event until the pending barrier);
//   - the same rows through plain SQLite (prepared statement, one
//     transaction per 1000 rows, same pragmas) and the ratio (medians of 3
//     alternating runs each);
//   - PendingAnalyticsCountUseCase (pending_count) time at 1,000,000 rows;
//   - RSS along a growing backlog, and peak RSS.
// Not run by CTest. Usage: bench_analytics [events] [backlog_rows]
// (defaults 300000 and 1000000; backlog_rows 0 skips the backlog phase).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "test_support.hpp"

using analytics_test::DirectHost;
using analytics_test::LoadedPlugin;
using analytics_test::now_ms;
using analytics_test::stat;
using analytics_test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kEvents =
    R"("events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length", "pinned"]}})";
constexpr const char* kPayload =
    R"({"kind": "text", "length": 1234, "pinned": false, "title": "free text that is not kept"})";
constexpr const char* kUserId = "3f2b8a4e-7c1d-4e5f-9a6b-0c1d2e3f4a5b";

// kB from /proc/self/status ("VmRSS", "VmHWM").
long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(line.find(':') + 1));
  }
  return -1;
}

long maxrss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void figure(const char* name, double value, const char* unit) { std::printf("%s: %.2f %s\n", name, value, unit); }
void figure(const char* name, long value, const char* unit) { std::printf("%s: %ld %s\n", name, value, unit); }

double percentile(std::vector<double>& values, double p) {
  const auto index = static_cast<size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

std::string config(const std::string& extra) { return "{" + std::string(kEvents) + extra + "}"; }

// The plain-SQLite reference: the spec's table, the same rows, WAL +
// synchronous=NORMAL, a prepared statement, one transaction per 1000 rows.
double plain_sqlite_rows_per_second(const std::filesystem::path& file, int rows) {
  analytics_test::Db db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  db.exec(
      "CREATE TABLE analytics_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, "
      "properties TEXT, user_id TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now')))");
  // The rows the plugin stores for kPayload, built before the clock starts.
  const std::string properties = R"({"kind":"text","length":1234,"pinned":false})";
  std::vector<std::string> created_at(static_cast<size_t>(rows));
  const int64_t base_ms = now_ms();
  for (int i = 0; i < rows; ++i) {
    const int64_t ms = base_ms + i / 100;
    char text[64];
    const time_t seconds = static_cast<time_t>(ms / 1000);
    tm utc{};
    gmtime_r(&seconds, &utc);
    std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03d", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
    created_at[static_cast<size_t>(i)] = text;
  }
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db.handle(),
                     "INSERT INTO analytics_queue (event_type, properties, user_id, created_at) VALUES (?, ?, ?, ?)",
                     -1, &insert, nullptr);
  const auto start = Clock::now();
  for (int i = 0; i < rows; ++i) {
    if (i % 1000 == 0) db.exec("BEGIN");
    sqlite3_bind_text(insert, 1, "note_created", -1, SQLITE_STATIC);
    sqlite3_bind_text(insert, 2, properties.data(), static_cast<int>(properties.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert, 3, kUserId, -1, SQLITE_STATIC);
    const std::string& at = created_at[static_cast<size_t>(i)];
    sqlite3_bind_text(insert, 4, at.data(), static_cast<int>(at.size()), SQLITE_STATIC);
    sqlite3_step(insert);
    sqlite3_reset(insert);
    if (i % 1000 == 999 || i == rows - 1) db.exec("COMMIT");
  }
  const double elapsed = seconds_since(start);
  sqlite3_finalize(insert);
  return rows / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  const int events = argc > 1 ? std::max(1000, std::atoi(argv[1])) : 300000;
  const int backlog_rows = argc > 2 ? std::max(0, std::atoi(argv[2])) : 1000000;
  TempDir dir("wep-bench-analytics");
  std::printf("events per run: %d\n", events);

  // 1. Backlog: 1,000,000 rows through the plugin with its default buffer,
  //    RSS sampled along the way, then the pending count timed.
  if (backlog_rows > 0) {
    DirectHost host(config(""), dir / "backlog", kUserId);
    LoadedPlugin plugin(ANALYTICS_PATH, host);
    figure("rss_before_backlog", status_kb("VmRSS"), "kB");
    constexpr int kBlock = 50000;
    int64_t sequence = 0;
    for (int stored = 0; stored < backlog_rows; stored += kBlock) {
      for (int i = 0; i < kBlock; ++i) plugin.mutation("note.created", kPayload, ++sequence, now_ms());
      plugin.pending();  // barrier: paced so that the default buffer never overflows
      if ((stored + kBlock) % 250000 == 0) {
        std::printf("rss_at_backlog_%d: %ld kB\n", stored + kBlock, status_kb("VmRSS"));
      }
    }
    const int64_t pending = plugin.pending();
    figure("backlog_rows", static_cast<long>(pending), "rows");
    figure("backlog_dropped", static_cast<long>(stat(plugin.stats(), "/dropped/buffer_full")), "events");
    std::vector<double> count_us;
    for (int i = 0; i < 1000; ++i) {
      const auto start = Clock::now();
      plugin.pending();
      count_us.push_back(seconds_since(start) * 1e6);
    }
    figure("pending_count_p50", percentile(count_us, 0.50), "us");
    figure("pending_count_p99", percentile(count_us, 0.99), "us");
    figure("pending_count_max", *std::max_element(count_us.begin(), count_us.end()), "us");
    figure("rss_after_backlog", status_kb("VmRSS"), "kB");
    figure("peak_rss_backlog_phase_vmhwm", status_kb("VmHWM"), "kB");
  }

  // 2. Handler latency on the calling thread and sustained stored events/s,
  //    against the plain-SQLite reference. The machine may be shared, so
  //    plugin and reference runs alternate (fresh files each time) and the
  //    medians are compared. The plugin's buffer holds a whole run: nothing
  //    is dropped and its writer is busy from the first event to the last.
  {
    constexpr int kRounds = 3;
    std::vector<double> handler_ns;
    std::vector<double> stored_rates;
    std::vector<double> reference_rates;
    int64_t stored_dropped = 0;
    double handoff_seconds_total = 0;
    for (int round = 0; round < kRounds; ++round) {
      {
        DirectHost host(config(R"(, "buffer_capacity": 2000000)"), dir / ("throughput" + std::to_string(round)),
                        kUserId);
        LoadedPlugin plugin(ANALYTICS_PATH, host);
        const auto start = Clock::now();
        for (int i = 0; i < events; ++i) {
          const int64_t committed_at = now_ms();
          const auto before = Clock::now();
          plugin.mutation("note.created", kPayload, i + 1, committed_at);
          handler_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - before).count());
        }
        handoff_seconds_total += seconds_since(start);
        const int64_t pending = plugin.pending();
        stored_rates.push_back(static_cast<double>(pending) / seconds_since(start));
        stored_dropped += stat(plugin.stats(), "/dropped/buffer_full");
      }
      reference_rates.push_back(
          plain_sqlite_rows_per_second(dir / ("reference" + std::to_string(round) + ".db"), events));
    }
    const double stored = percentile(stored_rates, 0.5);
    const double reference = percentile(reference_rates, 0.5);
    figure("handler_p50", percentile(handler_ns, 0.50) / 1000.0, "us");
    figure("handler_p99", percentile(handler_ns, 0.99) / 1000.0, "us");
    figure("handler_p999", percentile(handler_ns, 0.999) / 1000.0, "us");
    figure("handoff_events_per_s", kRounds * events / handoff_seconds_total, "events/s");
    figure("stored_events_per_s_median", stored, "events/s");
    figure("stored_dropped", static_cast<long>(stored_dropped), "events");
    figure("plain_sqlite_rows_per_s_median", reference, "rows/s");
    figure("stored_vs_plain_sqlite", 100.0 * stored / reference, "%");
  }

  figure("peak_rss_vmhwm", status_kb("VmHWM"), "kB");
  figure("peak_rss_getrusage", maxrss_kb(), "kB");
  return 0;
}
