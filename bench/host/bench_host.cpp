// bench_host: the host stub's in-process mutate() (one SQLite commit into
// the host's event log, then the bus hands the event to every effect lane),
// with the real analytics plugin loaded (offline: it stores every mapped
// mutation), against plain SQLite committing the same event-log row, one
// transaction per row, with the host's pragmas (WAL, synchronous=NORMAL).
//
//   build/bin/bench_host [mutations_per_round] [rounds]   (defaults 20000 and 7; about half a minute)
//
// Per round: mutations/s, latency p50 / p99 of one mutate() on the calling
// thread, the reference's rows/s, and the ratio; each printed as the median
// of the rounds with the lowest and highest round.
#include <Poco/TemporaryFile.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <wep/host_stub/host.hpp>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/bench/rounds.hpp>

using wep::bench::print_rounds;
using wep::bench::quantile;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPayload = R"({"kind":"text","length":1234,"pinned":false,"title":"free text that is not kept"})";
constexpr const char* kAnalyticsConfig =
    R"({"events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length", "pinned"]}}})";

struct HostRound {
  double per_s = 0, p50_us = 0, p99_us = 0;
};

HostRound host_round(const std::filesystem::path& dir, int mutations) {
  wep::host_stub::HostOptions options;
  options.data_dir = dir;
  options.plugins.push_back({WEP_ANALYTICS_PATH, kAnalyticsConfig});
  wep::host_stub::Host host(options);
  std::vector<double> latency_us;
  latency_us.reserve(static_cast<size_t>(mutations));
  const auto start = Clock::now();
  for (int i = 0; i < mutations; ++i) {
    const auto before = Clock::now();
    host.mutate("note.created", kPayload);
    latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
  HostRound round;
  round.per_s = mutations / std::chrono::duration<double>(Clock::now() - start).count();
  round.p50_us = quantile(latency_us, 0.50);
  round.p99_us = quantile(latency_us, 0.99);
  if (host.pending().value_or(-1) != mutations) throw std::runtime_error("the analytics plugin lost mutations");
  return round;
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error(std::string("SQL failed: ") + sql + ": " + why);
  }
}

// The host's event-log insert, one transaction per row (what one mutate commits).
double plain_sqlite_rows_per_s(const std::filesystem::path& file, int rows) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + file.string());
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  exec(db,
       "CREATE TABLE events (sequence INTEGER PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL, "
       "committed_at INTEGER NOT NULL)");
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events(type, payload, committed_at) VALUES(?1, ?2, ?3)", -1, &insert, nullptr);
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
  sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr);
  const auto start = Clock::now();
  for (int i = 0; i < rows; ++i) {
    sqlite3_step(begin);
    sqlite3_reset(begin);
    sqlite3_bind_text(insert, 1, "note.created", -1, SQLITE_STATIC);
    sqlite3_bind_text(insert, 2, kPayload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(insert, 3, 1764584400000 + i);
    if (sqlite3_step(insert) != SQLITE_DONE) throw std::runtime_error("reference insert failed");
    sqlite3_reset(insert);
    sqlite3_step(commit);
    sqlite3_reset(commit);
  }
  const double per_s = rows / std::chrono::duration<double>(Clock::now() - start).count();
  sqlite3_finalize(insert);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  return per_s;
}

}  // namespace

int main(int argc, char** argv) {
  const int mutations = argc > 1 ? std::max(1000, std::atoi(argv[1])) : 20000;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
  Poco::TemporaryFile temp_dir;  // removed with everything in it at exit
  temp_dir.createDirectories();
  const std::filesystem::path dir = temp_dir.path();
  std::printf("mutations per round: %d, rounds: %d\n", mutations, rounds);
  std::vector<double> rate, p50, p99, reference, ratio;
  for (int round = 0; round < rounds; ++round) {
    const std::string n = std::to_string(round);
    HostRound host;
    double plain = 0;
    if (round % 2 == 0) {
      host = host_round(dir / ("host" + n), mutations);
      plain = plain_sqlite_rows_per_s(dir / ("reference" + n + ".db"), mutations);
    } else {
      plain = plain_sqlite_rows_per_s(dir / ("reference" + n + ".db"), mutations);
      host = host_round(dir / ("host" + n), mutations);
    }
    rate.push_back(host.per_s);
    p50.push_back(host.p50_us);
    p99.push_back(host.p99_us);
    reference.push_back(plain);
    ratio.push_back(100.0 * host.per_s / plain);
  }
  print_rounds("mutate_per_s_with_analytics", rate, "mutations/s", 0);
  print_rounds("mutate_p50", p50, "us");
  print_rounds("mutate_p99", p99, "us");
  print_rounds("plain_sqlite_one_row_per_transaction", reference, "rows/s", 0);
  print_rounds("mutate_vs_plain_sqlite", ratio, "%", 1);
  return 0;
}
