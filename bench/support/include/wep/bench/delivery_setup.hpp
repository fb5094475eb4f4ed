// What the delivery benchmarks (bench_delivery, bench_nats) set up the same
// way: the analytics config delivering note.created rows through a given
// transport, and a backlog of such rows written straight into the plugin's
// queue while no host runs.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

namespace wep::bench {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// The properties of backlog row n: {"n":n,"kind":"text"}, both kept by the
// config below.
inline std::string backlog_properties(int64_t n) { return "{\"n\":" + std::to_string(n) + ",\"kind\":\"text\"}"; }

// The analytics config: note.created -> note_created keeping n and kind,
// `batch_size` rows a request, delivered by the transport plugin file
// `transport_plugin` whose config object's members write_transport_config
// writes (between StartObject and EndObject).
inline std::string delivery_config(const char* transport_plugin, uint32_t batch_size,
                                   const std::function<void(JsonWriter&)>& write_transport_config) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("batch_size");
  w.Uint(batch_size);
  w.Key("events");
  w.StartObject();
  w.Key("note.created");
  w.StartObject();
  w.Key("event_type");
  w.String("note_created");
  w.Key("properties");
  w.StartArray();
  w.String("n");
  w.String("kind");
  w.EndArray();
  w.EndObject();
  w.EndObject();
  w.Key("transport");
  w.StartObject();
  w.Key("plugin");
  w.String(transport_plugin);
  w.Key("config");
  w.StartObject();
  write_transport_config(w);
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return buffer.GetString();
}

// Rows 1..events exactly as the plugin stores backlog_properties(n) for
// user_id at created_at (the queue's local-time text), written in one
// transaction into the queue file `db_file`, which the plugin has created.
// Throws std::runtime_error.
inline void prefill_queue(const std::filesystem::path& db_file, int64_t events, const std::string& user_id,
                          const std::string& created_at) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_file.c_str(), &db) != SQLITE_OK) {
    sqlite3_close(db);
    throw std::runtime_error("cannot open " + db_file.string());
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* insert = nullptr;
  auto fail = [&](const std::string& what) {
    const std::string message = what + ": " + sqlite3_errmsg(db);
    sqlite3_finalize(insert);
    sqlite3_close(db);
    throw std::runtime_error(message);
  };
  auto exec = [&](const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(sql);
  };
  exec("BEGIN");
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO analytics_queue (id, event_type, properties, user_id, created_at) VALUES "
                         "(?1, 'note_created', ?2, ?3, ?4)",
                         -1, &insert, nullptr) != SQLITE_OK) {
    fail("preparing the backlog insert");
  }
  for (int64_t n = 1; n <= events; ++n) {
    const std::string properties = backlog_properties(n);
    sqlite3_bind_int64(insert, 1, n);
    sqlite3_bind_text(insert, 2, properties.c_str(), static_cast<int>(properties.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(insert, 3, user_id.c_str(), static_cast<int>(user_id.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert, 4, created_at.c_str(), static_cast<int>(created_at.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) fail("writing the backlog");
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  insert = nullptr;
  // The plugin's O(1) pending counter (see schemas/analytics_queue.sql).
  exec("UPDATE analytics_queue_count SET pending = (SELECT count(*) FROM analytics_queue)");
  exec("COMMIT");
  sqlite3_close(db);
}

}  // namespace wep::bench
