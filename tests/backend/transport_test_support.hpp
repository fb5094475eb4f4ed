// Test helpers: load a transport plugin for real (wep::PluginLibrary +
// wep::TransportHandle) with a minimal host api, and build batches of rows.
#pragma once

#include <dlfcn.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>
#include <wep/test/fake_host.hpp>
#include <wep/test/mapped_library.hpp>
#include <wep/test/temp_dir.hpp>

namespace wep::test {

// A unique event id per number: 00000000-0000-4000-8000-<number, 12 digits>.
inline std::string event_id_for(uint64_t number) {
  char text[40];
  std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012llu", static_cast<unsigned long long>(number));
  return text;
}

// Rows that own their text; batch() points into them.
struct Rows {
  struct Row {
    std::string event_id, event_type, properties_json, user_id, created_at;
  };
  std::vector<Row> rows;
  std::vector<wep_row> views;

  Rows& add(uint64_t number, std::string event_type = "note_created", std::string properties_json = "{\"words\":3}",
            std::string user_id = "pseudo-user-1", std::string created_at = "2026-11-20T10:00:00.123Z") {
    rows.push_back({event_id_for(number), std::move(event_type), std::move(properties_json), std::move(user_id),
                    std::move(created_at)});
    return *this;
  }
  Rows& add_range(uint64_t first, size_t count) {
    for (size_t i = 0; i < count; ++i) add(first + i);
    return *this;
  }
  wep_batch batch() {
    views.clear();
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      views.push_back({static_cast<int64_t>(i + 1), wep::str(r.event_id), wep::str(r.event_type),
                       wep::str(r.properties_json), wep::str(r.user_id), wep::str(r.created_at)});
    }
    return {views.data(), views.size()};
  }
};

struct Outcome {
  int32_t kind = WEP_VERDICT_FAILED;
  int64_t retry_after_ms = -1;
  int32_t http_status = 0;
  std::vector<uint8_t> rejected;
  std::string reason;
};

// One transport instance on its own library handle, with a FakeHost that
// offers config, data_dir and log only (as a flusher gives it).
class LoadedTransport {
 public:
  LoadedTransport(const std::string& plugin_path, std::string config_json, std::string data_dir) {
    std::string error;
    library_ = wep::PluginLibrary::open(plugin_path, error);
    if (!library_) throw std::runtime_error(error);
    if (!library_->descriptor().transport) throw std::runtime_error(plugin_path + " is not a transport");
    host_ =
        std::make_unique<FakeHost>(library_->name(), std::move(config_json), data_dir, "", FakeHost::Offer::kLogOnly);
    handle_ = std::make_unique<wep::TransportHandle>(library_);
    if (!handle_->create(host_->api(), error)) throw std::runtime_error("create failed: " + error);
  }
  ~LoadedTransport() { unload(); }

  // Starts; returns the error text ("" on success).
  std::string start() {
    std::string error;
    if (!handle_->start(error) && error.empty()) error = "start failed without a reason";
    return error;
  }

  Outcome send(Rows& rows) {
    wep_batch batch = rows.batch();
    Outcome out;
    out.rejected.assign(batch.count, 0);
    wep_verdict verdict{};
    verdict.struct_size = sizeof(verdict);
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.retry_after_ms = -1;
    verdict.http_status = 0;
    verdict.rejected = out.rejected.data();
    verdict.reason = wep::string_sink(out.reason);
    handle_->send(batch, verdict);
    out.kind = verdict.kind;
    out.retry_after_ms = verdict.retry_after_ms;
    out.http_status = verdict.http_status;
    return out;
  }

  void cancel() { handle_->cancel(); }
  wep_status stop(uint32_t timeout_ms = 1000) { return handle_->stop(timeout_ms); }

  // Stops, destroys the instance and releases the library.
  void unload() {
    if (!handle_) return;
    handle_->stop(1000);
    handle_.reset();
    library_.reset();
  }

  // Every line the transport logged, as "<level> <message>".
  std::vector<std::string> logs() const { return host_->log_lines(); }

 private:
  std::unique_ptr<FakeHost> host_;  // outlives the instance
  std::shared_ptr<const wep::PluginLibrary> library_;
  std::unique_ptr<wep::TransportHandle> handle_;
};

inline std::string verdict_name(int32_t kind) {
  switch (kind) {
    case WEP_VERDICT_DELIVERED:
      return "DELIVERED";
    case WEP_VERDICT_RETRY_LATER:
      return "RETRY_LATER";
    case WEP_VERDICT_REJECTED:
      return "REJECTED";
    case WEP_VERDICT_TOO_LARGE:
      return "TOO_LARGE";
    case WEP_VERDICT_FAILED:
      return "FAILED";
  }
  return "?";
}

}  // namespace wep::test
