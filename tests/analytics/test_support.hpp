// Helpers shared by the analytics suites (and, for now, bench_catch_up):
// direct reads of the SQLite queue file, DirectHost (the FakeHost of the
// analytics plugin) and LoadedPlugin, the real plugin started against it for
// tests that must call on_event themselves.
#pragma once

#include <Poco/UUID.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>
#include <wep/test/fake_host.hpp>
#include <wep/test/temp_dir.hpp>

namespace wep::test {

namespace fs = std::filesystem;

using wep::test::FakeHost;
using wep::test::TempDir;

// One analytics_queue row as read back from the file.
struct Row {
  int64_t id = 0;
  std::string event_type;
  std::optional<std::string> properties;
  std::optional<std::string> user_id;
  std::string created_at;
};

// A direct SQLite connection to a queue file, for checking what the plugin
// wrote (read-mostly; WAL lets it read while the plugin writes).
class Db {
 public:
  explicit Db(const fs::path& file, int flags = SQLITE_OPEN_READWRITE) {
    if (sqlite3_open_v2(file.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + file.string() + ": " + why);
    }
    sqlite3_busy_timeout(db_, 10000);
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string why = error ? error : "?";
      sqlite3_free(error);
      throw std::runtime_error("SQL failed: " + sql + ": " + why);
    }
  }

  // The first column of the first row as text ("" for NULL / no row).
  std::string scalar(const std::string& sql) {
    sqlite3_stmt* stmt = prepare(sql);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t integer(const std::string& sql) {
    const std::string text = scalar(sql);
    return text.empty() ? 0 : std::stoll(text);
  }

  std::vector<Row> rows(const std::string& where = "") {
    sqlite3_stmt* stmt = prepare("SELECT id, event_type, properties, user_id, created_at FROM analytics_queue " +
                                 where + " ORDER BY id");
    std::vector<Row> out;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      Row row;
      row.id = sqlite3_column_int64(stmt, 0);
      row.event_type = text(stmt, 1).value_or("");
      row.properties = text(stmt, 2);
      row.user_id = text(stmt, 3);
      row.created_at = text(stmt, 4).value_or("");
      out.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    return out;
  }

  sqlite3* handle() { return db_; }

 private:
  sqlite3_stmt* prepare(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("SQL failed: " + sql + ": " + sqlite3_errmsg(db_));
    }
    return stmt;
  }
  static std::optional<std::string> text(sqlite3_stmt* stmt, int column) {
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, column)),
                       static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
  }
  sqlite3* db_ = nullptr;
};

// FakeHost (wep/test/fake_host.hpp) for the analytics plugin: plugin name
// "analytics"; `event_log`: the host's event log to offer, if any (borrowed).
class DirectHost final : public FakeHost {
 public:
  DirectHost(std::string config_json, const fs::path& data_dir, std::string pseudonymous_id = "test-user",
             const wep::EventLogSource* event_log = nullptr)
      : FakeHost("analytics", std::move(config_json), data_dir, std::move(pseudonymous_id), Offer::kEverything,
                 event_log) {}
};

// The real plugin file, loaded and started against a FakeHost.
class LoadedPlugin {
 public:
  LoadedPlugin(const std::string& plugin_path, FakeHost& host) {
    std::string error;
    library_ = wep::PluginLibrary::open(plugin_path, error);
    if (!library_) throw std::runtime_error(error);
    handle_ = std::make_unique<wep::EffectPluginHandle>(library_);
    if (!handle_->create(host.api(), error)) throw std::runtime_error("create: " + error);
    if (!handle_->start(error)) {
      handle_->stop(1000);
      handle_.reset();
      throw std::runtime_error("start: " + error);
    }
  }
  ~LoadedPlugin() { stop(); }
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  void mutation(std::string_view type, std::string_view payload, int64_t sequence, int64_t committed_at_ms) {
    wep_event event{};
    event.struct_size = sizeof(event);
    event.kind = WEP_EVENT_MUTATION_COMMITTED;
    event.mutation.sequence = sequence;
    event.mutation.type = wep::str(type);
    event.mutation.payload_json = wep::str(payload);
    event.mutation.committed_at_ms = committed_at_ms;
    handle_->on_event(event);
  }
  void setting(std::string_view key, std::string_view value_json) {
    wep_event event{};
    event.struct_size = sizeof(event);
    event.kind = WEP_EVENT_SETTING_CHANGED;
    event.setting.key = wep::str(key);
    event.setting.value_json = wep::str(value_json);
    handle_->on_event(event);
  }
  void connectivity(bool online) {
    wep_event event{};
    event.struct_size = sizeof(event);
    event.kind = WEP_EVENT_CONNECTIVITY_CHANGED;
    event.connectivity.online = online ? 1 : 0;
    handle_->on_event(event);
  }
  int64_t pending() {
    int64_t n = -1;
    if (handle_->pending_count(n) != WEP_OK) throw std::runtime_error("pending_count failed");
    return n;
  }
  std::string stats() { return handle_->stats_json(); }
  // Stops and destroys the instance, then unloads the library.
  wep_status stop(uint32_t timeout_ms = 5000) {
    if (!handle_) return WEP_OK;
    const wep_status status = handle_->stop(timeout_ms);
    handle_.reset();
    library_.reset();
    return status;
  }
  wep::EffectPluginHandle& handle() { return *handle_; }

 private:
  std::shared_ptr<const wep::PluginLibrary> library_;
  std::unique_ptr<wep::EffectPluginHandle> handle_;
};

// A number in a stats JSON object by JSON pointer, e.g. "/dropped/unmapped".
// Throws if it is missing or not an integer.
inline int64_t stat(const std::string& json, const char* pointer) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  const rapidjson::Value* value = doc.HasParseError() ? nullptr : rapidjson::Pointer(pointer).Get(doc);
  if (!value || !value->IsInt64()) throw std::runtime_error(std::string("no integer at ") + pointer + " in " + json);
  return value->GetInt64();
}

// A string in a stats JSON object ("" for null or missing).
inline std::string stat_text(const std::string& json, const char* pointer) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  const rapidjson::Value* value = doc.HasParseError() ? nullptr : rapidjson::Pointer(pointer).Get(doc);
  return value && value->IsString() ? value->GetString() : "";
}

// "YYYY-MM-DDTHH:MM:SS.mmm": the spec's created_at format.
inline bool is_spec_timestamp(const std::string& text) {
  static constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.ddd";
  if (text.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == 'd' ? (text[i] >= '0' && text[i] <= '9') : text[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

// A canonical (lower-case) RFC 4122 UUID of version 5 (name-based, SHA-1).
inline bool is_uuid_v5(const std::string& id) {
  Poco::UUID uuid;
  return uuid.tryParse(id) && uuid.toString() == id && uuid.version() == Poco::UUID::UUID_NAME_BASED_SHA1 &&
         uuid.variant() == 2;
}

// The integer property "n" of a properties JSON text, if any.
inline std::optional<int64_t> property_n(const std::optional<std::string>& properties) {
  if (!properties) return std::nullopt;
  rapidjson::Document doc;
  doc.Parse(properties->c_str());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  auto it = doc.FindMember("n");
  if (it == doc.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
  return it->value.GetInt64();
}

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wep::test
