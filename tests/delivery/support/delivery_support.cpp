#include "delivery_support.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>

namespace wep::test {

std::string analytics_config_json(const AnalyticsOptions& o) {
  rapidjson::Document transport_config;
  if (transport_config.Parse(o.transport_config_json.c_str()).HasParseError()) {
    throw std::invalid_argument("transport_config_json is not JSON");
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("batch_size");
  w.Uint(o.batch_size);
  w.Key("batch_max_bytes");
  w.Uint(o.batch_max_bytes);
  w.Key("flush_interval_ms");
  w.Uint(o.flush_interval_ms);
  w.Key("backoff");
  w.StartObject();
  w.Key("initial_ms");
  w.Uint(o.backoff_initial_ms);
  w.Key("max_ms");
  w.Uint(o.backoff_max_ms);
  w.EndObject();
  w.Key("events");
  w.StartObject();
  for (auto [mutation, event_type] : {std::pair{"note.created", "note_created"}, std::pair{"poison.made", "poison"}}) {
    w.Key(mutation);
    w.StartObject();
    w.Key("event_type");
    w.String(event_type);
    w.Key("properties");
    w.StartArray();
    w.String("n");
    w.String("blob");
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  w.Key("transport");
  w.StartObject();
  w.Key("plugin");
  w.String(o.transport_plugin.c_str());
  w.Key("config");
  transport_config.Accept(w);
  w.Key("stop_timeout_ms");
  w.Uint(o.transport_stop_timeout_ms);
  w.EndObject();
  if (!o.database.empty()) {
    w.Key("database");
    w.String(o.database.c_str());
  }
  w.EndObject();
  return buffer.GetString();
}

std::string supabase_config_json(const std::string& url, const std::string& api_key, const std::string& ca_file,
                                 uint32_t timeout_ms, const std::string& table) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("url");
  w.String(url.c_str());
  w.Key("api_key");
  w.String(api_key.c_str());
  w.Key("table");
  w.String(table.c_str());
  w.Key("ca_file");
  w.String(ca_file.c_str());
  w.Key("timeout_ms");
  w.Uint(timeout_ms);
  w.EndObject();
  return buffer.GetString();
}

std::string host_stub_config_json(const std::filesystem::path& data_dir, const std::string& analytics_plugin,
                                  const AnalyticsOptions& options) {
  rapidjson::Document plugin_config;
  plugin_config.Parse(analytics_config_json(options).c_str());
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("data_dir");
  w.String(data_dir.c_str());
  w.Key("plugins");
  w.StartArray();
  w.StartObject();
  w.Key("path");
  w.String(analytics_plugin.c_str());
  w.Key("config");
  plugin_config.Accept(w);
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

wep::host_stub::HostOptions host_options(const std::filesystem::path& data_dir, const std::string& analytics_plugin,
                                    const AnalyticsOptions& options) {
  wep::host_stub::HostOptions host;
  host.data_dir = data_dir;
  host.plugins.push_back({analytics_plugin, analytics_config_json(options)});
  host.plugin_stop_timeout_ms = 5000;
  return host;
}

std::string payload(int64_t n, const std::string& blob) {
  std::string text = "{\"n\":" + std::to_string(n);
  if (!blob.empty()) text += ",\"blob\":\"" + blob + "\"";
  return text + "}";
}

int64_t n_of(const std::string& properties_json) {
  rapidjson::Document properties;
  if (properties.Parse(properties_json.c_str()).HasParseError() || !properties.IsObject()) return -1;
  auto it = properties.FindMember("n");
  return it != properties.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : -1;
}

namespace {

// The analytics plugin's stats object inside the host's stats line.
std::optional<rapidjson::Document> analytics_stats(wep::host_stub::Host& host) {
  rapidjson::Document all;
  const std::string text = host.stats_json();
  if (all.Parse(text.c_str()).HasParseError() || !all.IsObject()) return std::nullopt;
  auto plugins = all.FindMember("plugins");
  if (plugins == all.MemberEnd() || !plugins->value.IsObject()) return std::nullopt;
  auto analytics = plugins->value.FindMember("analytics");
  if (analytics == plugins->value.MemberEnd() || !analytics->value.IsObject()) return std::nullopt;
  rapidjson::Document out;
  out.CopyFrom(analytics->value, out.GetAllocator());
  return out;
}

}  // namespace

int64_t stat(wep::host_stub::Host& host, const std::string& name) {
  auto stats = analytics_stats(host);
  if (!stats) return -1;
  auto it = stats->FindMember(name.c_str());
  return it != stats->MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : -1;
}

std::string stat_text(wep::host_stub::Host& host, const std::string& name) {
  auto stats = analytics_stats(host);
  if (!stats) return {};
  auto it = stats->FindMember(name.c_str());
  return it != stats->MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

std::filesystem::path analytics_db(const std::filesystem::path& data_dir) {
  return data_dir / "plugins" / "analytics" / "analytics.db";
}

std::filesystem::path transport_dir(const std::filesystem::path& data_dir) {
  return data_dir / "plugins" / "analytics" / "transport";
}

namespace {

struct Database {
  explicit Database(const std::filesystem::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::string message = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw std::runtime_error("cannot open " + file.string() + ": " + message);
    }
    sqlite3_busy_timeout(db, 5000);
  }
  ~Database() { sqlite3_close(db); }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("cannot prepare '") + sql + "': " + sqlite3_errmsg(db));
    }
    return statement;
  }
  sqlite3* db = nullptr;
};

std::string column_text(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  return text ? reinterpret_cast<const char*>(text) : "";
}

}  // namespace

int64_t queue_rows(const std::filesystem::path& db_file) {
  Database db(db_file);
  sqlite3_stmt* statement = db.prepare("SELECT count(*) FROM analytics_queue");
  int64_t count = -1;
  if (sqlite3_step(statement) == SQLITE_ROW) count = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return count;
}

std::vector<int64_t> queued_ns(const std::filesystem::path& db_file) {
  Database db(db_file);
  sqlite3_stmt* statement = db.prepare("SELECT properties FROM analytics_queue ORDER BY id");
  std::vector<int64_t> out;
  while (sqlite3_step(statement) == SQLITE_ROW) out.push_back(n_of(column_text(statement, 0)));
  sqlite3_finalize(statement);
  return out;
}

std::vector<DeadLetter> dead_letters(const std::filesystem::path& db_file) {
  Database db(db_file);
  sqlite3_stmt* statement = db.prepare("SELECT event_type, properties, reason FROM analytics_dead_letter ORDER BY id");
  std::vector<DeadLetter> out;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    out.push_back({column_text(statement, 0), column_text(statement, 1), column_text(statement, 2)});
  }
  sqlite3_finalize(statement);
  return out;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace wep::test
