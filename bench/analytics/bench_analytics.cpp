// bench_analytics: the analytics plugin's enqueue path, loaded for real
// (libwep_analytics.so) and called directly (bench/support PluginDriver), against
// plain SQLite storing the same rows at the same transaction size.
//
//   build/bin/bench_analytics [events_per_round] [rounds] [backlog_rows]
//   (defaults 300000, 7 and 1000000; backlog_rows 0 skips the backlog phase;
//   about a minute with the defaults)
//
// Every rate and latency is measured once per round and printed as the
// median with the lowest and highest round (wep/bench/rounds.hpp). In each
// round the plugin run and the reference runs alternate in order (the
// machine may be shared and drifts over minutes), and the headline ratio is
// the median of the per-round ratios:
//   - handler latency on the calling thread (on_event, back to back: the
//     worst case for the hand-off), p50 / p99 / p99.9 per round;
//   - stored events/s: first on_event until the pending barrier (every row
//     committed);
//   - plain SQLite: the same rows (mapped properties, created_at text, user
//     id), a prepared statement, WAL + synchronous=NORMAL as the plugin,
//     committed kPluginRowsPerTransaction rows per transaction (the plugin
//     writer's largest transaction, which it reaches under this load), and
//     once more as one transaction for everything (the limit); and, for
//     information, at 4,096 rows per transaction through INSERT statements
//     of 32 rows each, as the plugin's writer stores them;
//   - pending_count at 1,000,000 queued rows, and RSS along that backlog.
#include <Poco/TemporaryFile.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/bench/plugin_driver.hpp>
#include <wep/bench/rounds.hpp>

using wep::bench::now_ms;
using wep::bench::PluginDriver;
using wep::bench::print_once;
using wep::bench::print_rounds;
using wep::bench::quantile;
using Clock = std::chrono::steady_clock;

namespace {

// The analytics writer commits at most this many rows per transaction
// (kMaxRowsPerTransaction in plugins/analytics); under a burst it does.
constexpr int kPluginRowsPerTransaction = 4096;
// Rows per INSERT statement of the plugin's writer (kRowsPerInsertStatement
// in plugins/analytics/queue_store.cpp).
constexpr int kPluginRowsPerStatement = 32;

constexpr const char* kEvents =
    R"("events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length", "pinned"]}})";
constexpr const char* kPayload =
    R"({"kind": "text", "length": 1234, "pinned": false, "title": "free text that is not kept"})";
// What the plugin stores for kPayload.
constexpr const char* kStoredProperties = R"({"kind":"text","length":1234,"pinned":false})";
constexpr const char* kUserId = "3f2b8a4e-7c1d-4e5f-9a6b-0c1d2e3f4a5b";

// kB from /proc/self/status ("VmRSS", "VmHWM").
long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(line.find(':') + 1));
  }
  return -1;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string config(const std::string& extra) { return "{" + std::string(kEvents) + extra + "}"; }

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error(std::string("SQL failed: ") + sql + ": " + why);
  }
}

// The plain-SQLite reference: the spec's table, the rows the plugin stores,
// the plugin's pragmas, a prepared statement of `rows_per_statement` rows
// (1: one row per statement), `rows_per_transaction` rows per transaction.
// Rows/s from the first insert to the last commit.
double plain_sqlite_rows_per_second(const std::filesystem::path& file, int rows, int rows_per_transaction,
                                    int rows_per_statement = 1) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    throw std::runtime_error("cannot open " + file.string());
  }
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  exec(db,
       "CREATE TABLE analytics_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, "
       "properties TEXT, user_id TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now')))");
  // created_at as the plugin formats it, built before the clock starts.
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
  const auto prepare = [&](int statement_rows) {
    std::string sql = "INSERT INTO analytics_queue (event_type, properties, user_id, created_at) VALUES (?, ?, ?, ?)";
    for (int i = 1; i < statement_rows; ++i) sql += ", (?, ?, ?, ?)";
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr);
    return statement;
  };
  sqlite3_stmt* insert_one = prepare(1);
  sqlite3_stmt* insert_run = prepare(rows_per_statement);
  const std::string properties = kStoredProperties;
  const auto start = Clock::now();
  for (int first = 0; first < rows; first += rows_per_transaction) {
    const int last = std::min(rows, first + rows_per_transaction);  // exclusive
    exec(db, "BEGIN");
    for (int i = first; i < last;) {
      sqlite3_stmt* insert = last - i >= rows_per_statement ? insert_run : insert_one;
      const int statement_rows = insert == insert_run ? rows_per_statement : 1;
      for (int row = 0; row < statement_rows; ++row, ++i) {
        const int p = 4 * row;
        sqlite3_bind_text(insert, p + 1, "note_created", -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, p + 2, properties.data(), static_cast<int>(properties.size()), SQLITE_STATIC);
        sqlite3_bind_text(insert, p + 3, kUserId, -1, SQLITE_STATIC);
        const std::string& at = created_at[static_cast<size_t>(i)];
        sqlite3_bind_text(insert, p + 4, at.data(), static_cast<int>(at.size()), SQLITE_STATIC);
      }
      if (sqlite3_step(insert) != SQLITE_DONE) throw std::runtime_error("reference insert failed");
      sqlite3_reset(insert);
    }
    exec(db, "COMMIT");
  }
  const double elapsed = seconds_since(start);
  sqlite3_finalize(insert_one);
  sqlite3_finalize(insert_run);
  sqlite3_close(db);
  return rows / elapsed;
}

struct PluginRound {
  double stored_per_s = 0;
  double handoff_per_s = 0;
  double handler_p50_us = 0, handler_p99_us = 0, handler_p999_us = 0;
  int64_t dropped = 0;
};

PluginRound plugin_round(const std::filesystem::path& dir, int events) {
  // The buffer holds a whole round: nothing is dropped and the writer is
  // busy from the first event to the last.
  PluginDriver plugin(WEP_ANALYTICS_PATH, config(R"(, "buffer_capacity": 2000000)"), dir, kUserId);
  std::vector<double> handler_ns;
  handler_ns.reserve(static_cast<size_t>(events));
  const auto start = Clock::now();
  for (int i = 0; i < events; ++i) {
    const int64_t committed_at = now_ms();
    const auto before = Clock::now();
    plugin.mutation("note.created", kPayload, i + 1, committed_at);
    handler_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - before).count());
  }
  PluginRound round;
  round.handoff_per_s = events / seconds_since(start);
  const int64_t pending = plugin.pending();  // barrier: every accepted event is committed
  round.stored_per_s = static_cast<double>(pending) / seconds_since(start);
  round.dropped = plugin.stat("/dropped/buffer_full");
  round.handler_p50_us = quantile(handler_ns, 0.50) / 1000.0;
  round.handler_p99_us = quantile(handler_ns, 0.99) / 1000.0;
  round.handler_p999_us = quantile(handler_ns, 0.999) / 1000.0;
  return round;
}

}  // namespace

int main(int argc, char** argv) {
  const int events = argc > 1 ? std::atoi(argv[1]) : 300000;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
  const int backlog_rows = argc > 3 ? std::max(0, std::atoi(argv[3])) : 1000000;
  if (events < 100000) {
    // Shorter runs measure the writer's start and the last commit more than
    // the steady state (20,000 events gave half the ratio of 300,000).
    std::fprintf(stderr, "bench_analytics: events_per_round must be at least 100000\n");
    return 2;
  }
  Poco::TemporaryFile temp_dir;  // removed with everything in it at exit
  temp_dir.createDirectories();
  const std::filesystem::path dir = temp_dir.path();
  std::printf("events per round: %d, rounds: %d, reference transaction: %d rows\n", events, rounds,
              kPluginRowsPerTransaction);

  // 1. Backlog: rows through the plugin with its default buffer, RSS
  //    sampled along the way, then the pending count timed in rounds.
  if (backlog_rows > 0) {
    PluginDriver plugin(WEP_ANALYTICS_PATH, config(""), dir / "backlog", kUserId);
    print_once("rss_before_backlog", static_cast<double>(status_kb("VmRSS")), "kB", 0);
    constexpr int kBlock = 50000;
    int64_t sequence = 0;
    for (int stored = 0; stored < backlog_rows; stored += kBlock) {
      for (int i = 0; i < kBlock; ++i) plugin.mutation("note.created", kPayload, ++sequence, now_ms());
      plugin.pending();  // barrier: paced so that the default buffer never overflows
      if ((stored + kBlock) % 250000 == 0) {
        print_once("rss_at_backlog_" + std::to_string(stored + kBlock), static_cast<double>(status_kb("VmRSS")), "kB",
                   0);
      }
    }
    print_once("backlog_rows", static_cast<double>(plugin.pending()), "rows", 0);
    print_once("backlog_dropped", static_cast<double>(plugin.stat("/dropped/buffer_full")), "events", 0);
    std::vector<double> p50, p99;
    for (int round = 0; round < rounds; ++round) {
      std::vector<double> count_us;
      for (int i = 0; i < 1000; ++i) {
        const auto start = Clock::now();
        plugin.pending();
        count_us.push_back(seconds_since(start) * 1e6);
      }
      p50.push_back(quantile(count_us, 0.50));
      p99.push_back(quantile(count_us, 0.99));
    }
    print_rounds("pending_count_p50", p50, "us");
    print_rounds("pending_count_p99", p99, "us");
    print_once("rss_after_backlog", static_cast<double>(status_kb("VmRSS")), "kB", 0);
    print_once("peak_rss_backlog_phase_vmhwm", static_cast<double>(status_kb("VmHWM")), "kB", 0);
  }

  // 2. The enqueue path against plain SQLite, alternating within rounds.
  std::vector<double> handler_p50, handler_p99, handler_p999, handoff, stored, reference, reference_one, ratio;
  std::vector<double> reference_multi_row, ratio_multi_row;
  int64_t dropped = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::string n = std::to_string(round);
    PluginRound plugin;
    double same_batch = 0, one_transaction = 0;
    const auto run_plugin = [&] { plugin = plugin_round(dir / ("plugin" + n), events); };
    const auto run_reference = [&] {
      same_batch = plain_sqlite_rows_per_second(dir / ("reference" + n + ".db"), events, kPluginRowsPerTransaction);
    };
    if (round % 2 == 0) {
      run_plugin();
      run_reference();
    } else {
      run_reference();
      run_plugin();
    }
    one_transaction = plain_sqlite_rows_per_second(dir / ("limit" + n + ".db"), events, events);
    const double multi_row = plain_sqlite_rows_per_second(dir / ("multi" + n + ".db"), events,
                                                          kPluginRowsPerTransaction, kPluginRowsPerStatement);
    reference_multi_row.push_back(multi_row);
    ratio_multi_row.push_back(100.0 * plugin.stored_per_s / multi_row);
    std::filesystem::remove_all(dir / ("plugin" + n));
    for (const char* name : {"reference", "limit", "multi"}) {
      for (const char* suffix : {".db", ".db-wal", ".db-shm"}) std::filesystem::remove(dir / (name + n + suffix));
    }
    handler_p50.push_back(plugin.handler_p50_us);
    handler_p99.push_back(plugin.handler_p99_us);
    handler_p999.push_back(plugin.handler_p999_us);
    handoff.push_back(plugin.handoff_per_s);
    stored.push_back(plugin.stored_per_s);
    reference.push_back(same_batch);
    reference_one.push_back(one_transaction);
    ratio.push_back(100.0 * plugin.stored_per_s / same_batch);
    dropped += plugin.dropped;
    std::printf(
        "round %d: stored %.0f/s, plain SQLite %.0f/s (%d rows/transaction), %.0f/s (one transaction), "
        "ratio %.1f%%\n",
        round + 1, plugin.stored_per_s, same_batch, kPluginRowsPerTransaction, one_transaction, ratio.back());
    std::fflush(stdout);
  }
  print_rounds("handler_p50", handler_p50, "us");
  print_rounds("handler_p99", handler_p99, "us");
  print_rounds("handler_p999", handler_p999, "us");
  print_rounds("handoff_events_per_s", handoff, "events/s", 0);
  print_rounds("stored_events_per_s", stored, "events/s", 0);
  print_rounds("plain_sqlite_rows_per_s_same_transaction_size", reference, "rows/s", 0);
  print_rounds("plain_sqlite_rows_per_s_one_transaction", reference_one, "rows/s", 0);
  print_rounds("plain_sqlite_rows_per_s_32_row_statements", reference_multi_row, "rows/s", 0);
  print_rounds("stored_vs_plain_sqlite", ratio, "%", 1);
  print_rounds("stored_vs_plain_sqlite_32_row_statements", ratio_multi_row, "%", 1);
  print_once("stored_dropped", static_cast<double>(dropped), "events", 0);
  print_once("peak_rss_vmhwm", static_cast<double>(status_kb("VmHWM")), "kB", 0);
  return dropped == 0 ? 0 : 1;
}
