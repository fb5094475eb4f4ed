// The `supabase` transport plugin: sends batches of analytics rows to a
// Supabase (PostgREST) table over HTTPS.
//
// Wire contract:
//   POST {url}/rest/v1/{table}?on_conflict=event_id
//   apikey: {api_key}
//   Authorization: Bearer {api_key}     only when api_key is a JWT (a legacy
//                                       anon key); never for sb_publishable_
//   Content-Type: application/json
//   Prefer: return=minimal, resolution=ignore-duplicates
//   body: [{"event_id", "event_type", "properties", "user_id", "created_at"}, ...]
//
// Its parts: supabase_config (what the config may say), http_connection
// (lookup, TLS, watchdog, cancel), postgrest_status (what an answer means;
// only 201 is delivered), and the row encoder shared with other transports
// (wep::transport_json).
#include <wep/version.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "http_connection.hpp"
#include "postgrest_status.hpp"
#include "supabase_config.hpp"

namespace wep::supabase {
namespace {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SupabaseTransport final : public wep::TransportPlugin {
 public:
  explicit SupabaseTransport(wep::Host host) : host_(host) {}

  void start() override {
    config_ = read_supabase_config(host_.config_json(), host_.data_dir());
    HttpEndpoint endpoint;
    endpoint.https = config_.https;
    endpoint.host = config_.host;
    endpoint.port = config_.port;
    endpoint.ca_file = config_.ca_file;
    endpoint.timeout_ms = config_.timeout_ms;
    auto connection = std::make_unique<HttpConnection>(endpoint);
    headers_ = {{"Host", config_.host_header},
                {"Content-Type", "application/json"},
                {"apikey", config_.api_key},
                {"Prefer", "return=minimal, resolution=ignore-duplicates"},
                {"User-Agent", "wep-supabase-transport/1"}};
    if (config_.key_kind == KeyKind::kJwt) headers_.emplace_back("Authorization", "Bearer " + config_.api_key);
    {
      std::lock_guard lock(connection_mutex_);
      connection_ = std::move(connection);
    }
    host_.log(WEP_LOG_INFO, "supabase transport: sending to " + config_.display_url +
                                (config_.https ? (config_.ca_file.empty() ? " (system CA store)"
                                                                          : " (CA file " + config_.ca_file + ")")
                                               : " (plain http to a loopback host: not for production)"));
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    if (!connection_) {
      verdict.failed("supabase transport is not started");
      return;
    }
    if (!encode(batch, verdict)) return;
    const HttpAnswer answer = connection_->post(config_.target, headers_, body_);
    switch (answer.outcome) {
      case HttpAnswer::Outcome::kAnswered: {
        verdict.set_http_status(answer.status);
        std::optional<std::string_view> retry_after;
        if (answer.retry_after) retry_after = *answer.retry_after;
        const StatusVerdict mapped = verdict_for_status(answer.status, answer.body, retry_after, unix_now_ms(),
                                                        config_.display_url, config_.table);
        apply(mapped, verdict);
        return;
      }
      case HttpAnswer::Outcome::kCertificateRefused:
        host_.log(WEP_LOG_WARN, "supabase transport: " + answer.error);
        verdict.failed(answer.error);
        return;
      case HttpAnswer::Outcome::kCancelled:
      case HttpAnswer::Outcome::kTimedOut:
      case HttpAnswer::Outcome::kNetworkError:
        verdict.retry_later(answer.error);
        return;
    }
  }

  void cancel() noexcept override {
    std::lock_guard lock(connection_mutex_);
    if (connection_) connection_->cancel();
  }

  bool stop(uint32_t) override {
    std::unique_ptr<HttpConnection> connection;
    {
      std::lock_guard lock(connection_mutex_);
      connection = std::move(connection_);
    }
    if (connection) connection->close();
    return true;
  }

 private:
  static void apply(const StatusVerdict& mapped, wep::Verdict& verdict) {
    switch (mapped.kind) {
      case WEP_VERDICT_DELIVERED:
        verdict.delivered();
        break;
      case WEP_VERDICT_RETRY_LATER:
        verdict.retry_later(mapped.reason, mapped.retry_after_ms);
        break;
      case WEP_VERDICT_TOO_LARGE:
        verdict.too_large(mapped.reason);
        break;
      case WEP_VERDICT_REJECTED:
        verdict.rejected_all(mapped.reason);
        break;
      default:
        verdict.failed(mapped.reason);
        break;
    }
  }

  // Writes the JSON array into body_. False (verdict set) when rows cannot be
  // encoded: those rows are flagged REJECTED and nothing is sent.
  bool encode(const wep_batch& batch, wep::Verdict& verdict) {
    body_.clear();
    body_.push_back('[');
    std::string reasons;
    size_t bad_rows = 0;
    for (size_t i = 0; i < batch.count; ++i) {
      if (body_.size() > 1) body_.push_back(',');
      std::string why;
      if (!encoder_.append(batch.rows[i], body_, why)) {
        verdict.rejected_row(i);
        if (bad_rows++ < 3) reasons += (reasons.empty() ? "" : "; ") + why;
        if (body_.back() == ',') body_.pop_back();
      }
    }
    body_.push_back(']');
    if (bad_rows == 0) return true;
    verdict.reason("cannot encode " + std::to_string(bad_rows) + " row(s): " + reasons);
    return false;
  }

  wep::Host host_;
  SupabaseConfig config_;
  std::vector<std::pair<std::string, std::string>> headers_;
  wep::transport::RowEncoder encoder_;
  std::string body_;  // reused request body buffer
  // Created by start(), destroyed by stop(). send() uses it without the lock
  // (send and stop never overlap); cancel() may come from any thread.
  std::mutex connection_mutex_;
  std::unique_ptr<HttpConnection> connection_;
};

}  // namespace
}  // namespace wep::supabase

WEP_TRANSPORT_PLUGIN("supabase", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<wep::supabase::SupabaseTransport>(host);
})
