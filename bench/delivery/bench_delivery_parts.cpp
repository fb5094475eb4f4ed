// bench_delivery_parts: two steps of the delivery path on their own, each
// against the straightforward way of doing the same work.
//
//   build/bin/bench_delivery_parts [rows_per_batch] [rounds]   (defaults 500 and 15; a few seconds)
//
//   - body encoding: the transports' RowEncoder (wep::transport_json) turning
//     one batch of queued rows into the request body, against a
//     rapidjson::Writer writing the same objects (properties parsed into a
//     Document and written back, as a DOM-based encoder would);
//   - deleting a delivered batch from the queue file: one statement per run
//     of consecutive ids (what the flusher does) against one statement per
//     row, both in one transaction, as process CPU time.
// Every figure is the median of the rounds with the lowest and highest round.
#include <Poco/TemporaryFile.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/plugin.hpp>
#include <wep/bench/rounds.hpp>
#include <wep/support/transport_json.hpp>

using wep::bench::print_rounds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kBatchesPerRound = 200;

struct RowText {
  std::string event_id, event_type, properties_json, user_id, created_at;
};

std::vector<RowText> make_rows(int count) {
  std::vector<RowText> rows;
  for (int i = 0; i < count; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "6f1c2d3e-4a5b-5c6d-8e7f-%012d", i);
    rows.push_back({id, "note_created",
                    R"({"kind":"text","length":)" + std::to_string(1000 + i) + R"(,"pinned":false})",
                    "3f2b8a4e-7c1d-4e5f-9a6b-0c1d2e3f4a5b", "2026-11-20T10:00:00.123Z"});
  }
  return rows;
}

// ms to encode one batch, averaged over kBatchesPerRound batches.
double encode_with_row_encoder_ms(const std::vector<RowText>& rows) {
  std::vector<wep_row> views;
  for (size_t i = 0; i < rows.size(); ++i) {
    const RowText& r = rows[i];
    views.push_back({static_cast<int64_t>(i + 1), wep::str(r.event_id), wep::str(r.event_type),
                     wep::str(r.properties_json), wep::str(r.user_id), wep::str(r.created_at)});
  }
  wep::transport::RowEncoder encoder;
  std::string body, why;
  size_t total = 0;
  const auto start = Clock::now();
  for (int batch = 0; batch < kBatchesPerRound; ++batch) {
    body.clear();
    body.push_back('[');
    for (size_t i = 0; i < views.size(); ++i) {
      if (i) body.push_back(',');
      if (!encoder.append(views[i], body, why)) throw std::runtime_error(why);
    }
    body.push_back(']');
    total += body.size();
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / kBatchesPerRound;
  if (total == 0) std::abort();
  return ms;
}

double encode_with_rapidjson_writer_ms(const std::vector<RowText>& rows) {
  size_t total = 0;
  const auto start = Clock::now();
  for (int batch = 0; batch < kBatchesPerRound; ++batch) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartArray();
    for (const RowText& r : rows) {
      rapidjson::Document properties;
      properties.Parse(r.properties_json.c_str());
      w.StartObject();
      w.Key("event_id");
      w.String(r.event_id.c_str(), static_cast<rapidjson::SizeType>(r.event_id.size()));
      w.Key("event_type");
      w.String(r.event_type.c_str(), static_cast<rapidjson::SizeType>(r.event_type.size()));
      w.Key("properties");
      properties.Accept(w);
      w.Key("user_id");
      w.String(r.user_id.c_str(), static_cast<rapidjson::SizeType>(r.user_id.size()));
      w.Key("created_at");
      w.String(r.created_at.c_str(), static_cast<rapidjson::SizeType>(r.created_at.size()));
      w.EndObject();
    }
    w.EndArray();
    total += buffer.GetSize();
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / kBatchesPerRound;
  if (total == 0) std::abort();
  return ms;
}

double cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error(std::string("SQL failed: ") + sql + ": " + why);
  }
}

// CPU ms per deleted batch of `rows_per_batch` consecutive ids, deleting
// kBatchesPerRound batches from a queue file of the spec's table.
double delete_cpu_ms(const std::filesystem::path& file, int rows_per_batch, bool as_ranges) {
  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + file.string());
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  exec(db,
       "CREATE TABLE analytics_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, "
       "properties TEXT, user_id TEXT, created_at TEXT NOT NULL)");
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO analytics_queue (event_type, properties, user_id, created_at) VALUES "
                     "('note_created', '{\"kind\":\"text\",\"length\":1234,\"pinned\":false}', "
                     "'3f2b8a4e-7c1d-4e5f-9a6b-0c1d2e3f4a5b', '2026-11-20T10:00:00.123')",
                     -1, &insert, nullptr);
  exec(db, "BEGIN");
  for (int i = 0; i < rows_per_batch * kBatchesPerRound; ++i) {
    sqlite3_step(insert);
    sqlite3_reset(insert);
  }
  exec(db, "COMMIT");
  sqlite3_finalize(insert);
  sqlite3_stmt* remove = nullptr;
  sqlite3_prepare_v2(db,
                     as_ranges ? "DELETE FROM analytics_queue WHERE id BETWEEN ?1 AND ?2"
                               : "DELETE FROM analytics_queue WHERE id = ?1",
                     -1, &remove, nullptr);
  const double start = cpu_ms();
  for (int batch = 0; batch < kBatchesPerRound; ++batch) {
    const int64_t first = static_cast<int64_t>(batch) * rows_per_batch + 1;
    exec(db, "BEGIN");
    if (as_ranges) {
      sqlite3_bind_int64(remove, 1, first);
      sqlite3_bind_int64(remove, 2, first + rows_per_batch - 1);
      sqlite3_step(remove);
      sqlite3_reset(remove);
    } else {
      for (int64_t id = first; id < first + rows_per_batch; ++id) {
        sqlite3_bind_int64(remove, 1, id);
        sqlite3_step(remove);
        sqlite3_reset(remove);
      }
    }
    exec(db, "COMMIT");
  }
  const double ms = (cpu_ms() - start) / kBatchesPerRound;
  sqlite3_finalize(remove);
  sqlite3_close(db);
  std::filesystem::remove(file);
  std::filesystem::remove(file.string() + "-wal");
  std::filesystem::remove(file.string() + "-shm");
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const int rows_per_batch = argc > 1 ? std::max(1, std::atoi(argv[1])) : 500;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 15;
  Poco::TemporaryFile temp_dir;  // removed with everything in it at exit
  temp_dir.createDirectories();
  const std::filesystem::path dir = temp_dir.path();
  std::printf("rows per batch: %d, %d batches per round, %d rounds\n", rows_per_batch, kBatchesPerRound, rounds);

  const std::vector<RowText> rows = make_rows(rows_per_batch);
  std::vector<double> encoder, writer, encode_ratio, ranges, row_by_row, delete_ratio;
  for (int round = 0; round < rounds; ++round) {
    encoder.push_back(encode_with_row_encoder_ms(rows));
    writer.push_back(encode_with_rapidjson_writer_ms(rows));
    encode_ratio.push_back(100.0 * encoder.back() / writer.back());
    ranges.push_back(delete_cpu_ms(dir / "ranges.db", rows_per_batch, true));
    row_by_row.push_back(delete_cpu_ms(dir / "rows.db", rows_per_batch, false));
    delete_ratio.push_back(row_by_row.back() / ranges.back());
  }
  print_rounds("encode_batch_row_encoder", encoder, "ms", 3);
  print_rounds("encode_batch_rapidjson_dom_writer", writer, "ms", 3);
  print_rounds("row_encoder_vs_dom_writer_time", encode_ratio, "%", 1);
  print_rounds("delete_batch_as_id_ranges_cpu", ranges, "ms", 3);
  print_rounds("delete_batch_row_by_row_cpu", row_by_row, "ms", 3);
  print_rounds("row_by_row_vs_ranges_cpu", delete_ratio, "x", 2);
  return 0;
}
