// scripted_transport: a transport plugin for the delivery tests, a double at
// the network edge whose verdicts are scripted by its config (a JSON object,
// every key optional):
//   "reject_event_types": ["poison", ...]  rows of these types are REJECTED
//   "identify_rejected": false              true: flag exactly those rows;
//                                           false: flag all rows (the caller
//                                           must split to find them)
//   "max_rows": 0                           > 0: larger batches are TOO_LARGE
//   "max_properties_bytes": 0               > 0: a batch with a row whose
//                                           properties exceed it is TOO_LARGE
//   "fail_first": 0                         the first N sends fail with
//   "fail_kind": "retry" | "failed"         RETRY_LATER or FAILED
//   "retry_after_ms": -1                    with "retry": the server's delay
//   "block_until_cancel": false             send() blocks until cancel()
//   "out": "delivered.log"                  relative to the data dir
// Every delivered row is appended to `out` as "<event_id> <event_type>
// <properties or null>\n", once per event id (idempotent like a server);
// every send appends "<rows> <verdict>\n" to "<out>.sends". Thread safety as
// the transport contract: send from one thread, cancel from any.
#include <rapidjson/document.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>
#include <wep/plugin.hpp>

namespace {

class ScriptedTransport final : public wep::TransportPlugin {
 public:
  explicit ScriptedTransport(wep::Host host) : host_(host) {}

  void start() override {
    rapidjson::Document config;
    const std::string text(host_.config_json());
    if (config.Parse(text.c_str()).HasParseError() || !config.IsObject()) {
      throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "scripted transport: config is not a JSON object");
    }
    if (auto it = config.FindMember("reject_event_types"); it != config.MemberEnd() && it->value.IsArray()) {
      for (const auto& type : it->value.GetArray()) {
        if (type.IsString()) reject_types_.insert(type.GetString());
      }
    }
    auto number = [&](const char* key, int64_t fallback) {
      auto it = config.FindMember(key);
      return it != config.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : fallback;
    };
    auto boolean = [&](const char* key) {
      auto it = config.FindMember(key);
      return it != config.MemberEnd() && it->value.IsBool() && it->value.GetBool();
    };
    identify_rejected_ = boolean("identify_rejected");
    block_until_cancel_ = boolean("block_until_cancel");
    max_rows_ = number("max_rows", 0);
    max_properties_bytes_ = number("max_properties_bytes", 0);
    fail_left_ = number("fail_first", 0);
    retry_after_ms_ = number("retry_after_ms", -1);
    if (auto it = config.FindMember("fail_kind"); it != config.MemberEnd() && it->value.IsString()) {
      fail_is_retry_ = std::string(it->value.GetString()) != "failed";
    }
    std::string out = "delivered.log";
    if (auto it = config.FindMember("out"); it != config.MemberEnd() && it->value.IsString())
      out = it->value.GetString();
    out_path_ = std::filesystem::path(std::string(host_.data_dir())) / out;
    sends_path_ = out_path_.string() + ".sends";
    std::ifstream existing(out_path_);
    for (std::string line; std::getline(existing, line);) delivered_ids_.insert(line.substr(0, line.find(' ')));
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    const std::string kind = decide(batch, verdict);
    std::ofstream sends(sends_path_, std::ios::app);
    sends << batch.count << ' ' << kind << '\n';
  }

  void cancel() noexcept override {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    cancel_signal_.notify_all();
  }

  bool stop(uint32_t) override { return true; }

 private:
  std::string decide(const wep_batch& batch, wep::Verdict& verdict) {
    if (block_until_cancel_) {
      std::unique_lock lock(mutex_);
      cancel_signal_.wait(lock, [&] { return cancelled_; });
      cancelled_ = false;
      verdict.retry_later("cancelled");
      return "cancelled";
    }
    if (fail_left_ > 0) {
      --fail_left_;
      if (fail_is_retry_) {
        verdict.set_http_status(503);
        verdict.retry_later("scripted transient failure", retry_after_ms_);
        return "retry";
      }
      verdict.set_http_status(401);
      verdict.failed("scripted auth failure");
      return "failed";
    }
    if (max_rows_ > 0 && static_cast<int64_t>(batch.count) > max_rows_) {
      verdict.too_large("more than max_rows rows");
      return "too_large";
    }
    for (size_t i = 0; i < batch.count; ++i) {
      if (max_properties_bytes_ > 0 &&
          static_cast<int64_t>(batch.rows[i].properties_json.size) > max_properties_bytes_) {
        verdict.too_large("a row larger than max_properties_bytes");
        return "too_large";
      }
    }
    bool any_rejected = false;
    for (size_t i = 0; i < batch.count; ++i) {
      if (reject_types_.count(std::string(wep::view(batch.rows[i].event_type)))) {
        any_rejected = true;
        if (identify_rejected_) verdict.rejected_row(i);
      }
    }
    if (any_rejected) {
      verdict.set_http_status(400);
      if (identify_rejected_) {
        verdict.reason("scripted rejection of the flagged rows");
      } else {
        verdict.rejected_all("scripted rejection of the batch");
      }
      return "rejected";
    }
    std::ofstream out(out_path_, std::ios::app);
    for (size_t i = 0; i < batch.count; ++i) {
      const wep_row& row = batch.rows[i];
      std::string id(wep::view(row.event_id));
      if (!delivered_ids_.insert(id).second) continue;
      out << id << ' ' << wep::view(row.event_type) << ' '
          << (row.properties_json.size ? std::string(wep::view(row.properties_json)) : std::string("null")) << '\n';
    }
    out.flush();
    if (!out) throw std::runtime_error("scripted transport: cannot write " + out_path_.string());
    verdict.delivered();
    return "delivered";
  }

  wep::Host host_;
  std::set<std::string> reject_types_;
  bool identify_rejected_ = false;
  bool block_until_cancel_ = false;
  bool fail_is_retry_ = true;
  int64_t max_rows_ = 0;
  int64_t max_properties_bytes_ = 0;
  int64_t fail_left_ = 0;
  int64_t retry_after_ms_ = -1;
  std::filesystem::path out_path_;
  std::string sends_path_;
  std::set<std::string> delivered_ids_;

  std::mutex mutex_;
  std::condition_variable cancel_signal_;
  bool cancelled_ = false;
};

}  // namespace

WEP_TRANSPORT_PLUGIN("scripted_transport", "1.0", [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<ScriptedTransport>(host);
})
