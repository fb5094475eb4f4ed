// Helpers of the nats transport's tests: a cluster in a temporary folder,
// the transport loaded for real (wep::PluginLibrary + wep::TransportHandle)
// with a host api that offers config, data_dir and log (as a flusher gives
// it), and the transport's config.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <wep/nats_cluster/nats_cluster.hpp>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>
#include <wep/test/temp_dir.hpp>

#include "transport_test_support.hpp"  // wep::test::Rows, event_id_for

namespace wep::test {

using wep::test::Rows;
using wep::test::TempDir;

// The transport's config as JSON: servers, subject, and `extra` members
// (e.g. R"("stream": "EVENTS", "timeout_ms": 2000)"), without braces.
inline std::string nats_config_json(const std::vector<std::string>& servers, const std::string& subject,
                                    const std::string& extra = "") {
  std::string json = "{\"servers\": [";
  for (size_t i = 0; i < servers.size(); ++i) json += (i ? ", \"" : "\"") + servers[i] + "\"";
  json += "], \"subject\": \"" + subject + "\"";
  if (!extra.empty()) json += ", " + extra;
  return json + "}";
}

struct Verdict {
  int32_t kind = WEP_VERDICT_FAILED;
  std::vector<uint8_t> flags;  // `rejected`: with PER_ROW the WEP_ROW_* of each row
  std::string reason;
};

// The nats transport on its own library handle.
class DirectTransport {
 public:
  DirectTransport(const std::string& config_json, const std::string& data_dir)
      : config_json_(config_json), data_dir_(data_dir) {
    std::string error;
    library_ = wep::PluginLibrary::open(WEP_NATS_PATH, error);
    if (!library_) throw std::runtime_error(error);
    wep::HostServices services;
    services.log = [this](int32_t, std::string_view, std::string_view message) {
      std::lock_guard lock(mutex_);
      logs_.emplace_back(message);
    };
    api_ = std::make_unique<wep::HostApiTable>(library_->name(), config_json_, data_dir_, std::move(services));
    handle_ = std::make_unique<wep::TransportHandle>(library_);
    if (!handle_->create(api_->get(), error)) throw std::runtime_error("create failed: " + error);
  }
  ~DirectTransport() {
    handle_->stop(2000);
    handle_.reset();
  }

  // "" on success, else the refusal.
  std::string start() {
    std::string error;
    if (!handle_->start(error) && error.empty()) error = "start failed without a reason";
    return error;
  }

  // per_row_ok: the caller takes PER_ROW (API 1.2); false: a 1.1 caller,
  // whose wep_verdict ends before per_row_ok.
  Verdict send(Rows& rows, bool per_row_ok = true) {
    const wep_batch batch = rows.batch();
    Verdict out;
    out.flags.assign(batch.count, 0);
    wep_verdict verdict{};
    verdict.struct_size = per_row_ok ? sizeof(wep_verdict) : offsetof(wep_verdict, per_row_ok);
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.retry_after_ms = -1;
    verdict.rejected = out.flags.data();
    verdict.reason = wep::string_sink(out.reason);
    verdict.per_row_ok = per_row_ok ? 1 : 0;
    handle_->send(batch, verdict);
    out.kind = verdict.kind;
    return out;
  }

  void cancel() { handle_->cancel(); }
  std::optional<int64_t> resend_window_ms() { return handle_->resend_window_ms(); }

  std::vector<std::string> logs() const {
    std::lock_guard lock(mutex_);
    return logs_;
  }
  bool logged(const std::string& text) const {
    for (const std::string& line : logs())
      if (line.find(text) != std::string::npos) return true;
    return false;
  }

 private:
  std::string config_json_, data_dir_;
  std::unique_ptr<wep::HostApiTable> api_;  // outlives the instance
  std::shared_ptr<const wep::PluginLibrary> library_;
  std::unique_ptr<wep::TransportHandle> handle_;
  mutable std::mutex mutex_;
  std::vector<std::string> logs_;
};

}  // namespace wep::test
