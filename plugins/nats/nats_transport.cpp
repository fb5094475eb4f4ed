// The `nats` transport plugin: publishes analytics rows to a NATS JetStream
// stream through libnats, exactly once per event id.
//
// Wire contract: one message per row on `subject`; the body is the row as
// the Supabase transport sends it (wep::transport::RowEncoder: event_id,
// event_type, properties, user_id, created_at); header Nats-Msg-Id = the
// event id, and Nats-Expected-Stream = `stream` when configured. The stream
// ignores a message id it has seen within its duplicate window and answers
// it as a duplicate.
//
// A batch is published asynchronously and each message acknowledged on its
// own (JetStreamPublisher): acknowledged rows (stored or duplicate) are
// delivered, unacknowledged ones are sent again later (WEP_VERDICT_PER_ROW,
// API 1.2; older hosts get RETRY_LATER or REJECTED, see
// wep::Verdict::per_row). Permanent errors are not retried fast: a row larger
// than the servers' max_payload, or than the stream's max message size, is
// rejected; a permission, authentication or TLS refusal is FAILED.
//
// At start, when the cluster is reachable and `stream` is named, the stream
// must exist, and its duplicate window less timeout_ms is reported as the
// resend window (API 1.2), which the caller compares with its retry horizon.
#include <wep/version.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "jetstream_publisher.hpp"
#include "nats_config.hpp"

namespace {

using wep::nats::Failure;

// Bytes libnats adds to a message's body as headers: "NATS/1.0\r\n",
// "Nats-Msg-Id: <id>\r\n", "Nats-Expected-Stream: <stream>\r\n" and the
// closing "\r\n".
size_t header_bytes(size_t id_size, const std::string& stream) {
  return 10 + 15 + id_size + (stream.empty() ? 0 : 24 + stream.size()) + 2;
}

class NatsTransport final : public wep::TransportPlugin {
 public:
  explicit NatsTransport(wep::Host host) : host_(host) {}

  void start() override {
    config_ = wep::nats::read_nats_config(host_.config_json(), host_.data_dir());
    publisher_ = std::make_unique<wep::nats::JetStreamPublisher>(config_);
    host_.log(WEP_LOG_INFO, "nats transport: publishing to " + config_.describe());
    const wep::nats::Connected connected = publisher_->connect();
    if (connected.failure != Failure::kNone) {
      host_.log(WEP_LOG_WARN, "nats transport: the cluster is not reachable at start (" + connected.reason +
                                  "); the stream and its duplicate window are not checked");
      return;
    }
    if (config_.stream.empty()) {
      host_.log(WEP_LOG_INFO,
                "nats transport: no stream named: its duplicate window is not checked (set 'stream' to check it)");
      return;
    }
    std::string why;
    bool missing = false;
    const auto facts = publisher_->stream_facts(why, missing);
    if (missing) {
      publisher_->close(config_.timeout_ms);
      throw wep::Error(WEP_ERR_INVALID_ARGUMENT,
                       "nats config: key 'stream': the cluster has no stream '" + config_.stream + "' (" + why + ")");
    }
    if (!facts) {
      host_.log(WEP_LOG_WARN, "nats transport: cannot read stream '" + config_.stream + "': " + why);
      return;
    }
    std::string subjects;
    for (const std::string& s : facts->subjects) subjects += (subjects.empty() ? "" : ", ") + s;
    host_.log(WEP_LOG_INFO, "nats transport: stream " + config_.stream + " (subjects " + subjects +
                                "): " + std::to_string(facts->replicas) + " replica(s), " + facts->storage +
                                " storage, duplicate window " + std::to_string(facts->duplicate_window_ms) + " ms");
    resend_window_ms_.store(facts->duplicate_window_ms - static_cast<int64_t>(config_.timeout_ms));
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    if (!publisher_) {
      verdict.failed("nats transport is not started");
      return;
    }
    const wep::nats::Connected connected = publisher_->connect();
    if (connected.failure == Failure::kPermanent) {
      verdict.failed(connected.reason);
      return;
    }
    if (connected.failure == Failure::kTransient) {
      verdict.retry_later(connected.reason);
      return;
    }

    // Encode every row; rows that cannot be encoded or are too large for the
    // servers are refused here, the others published.
    outcomes_.assign(batch.count, WEP_ROW_RETRY_LATER);
    bodies_.clear();
    spans_.clear();
    std::string refusals;
    size_t refused = 0;
    const int64_t max_payload = publisher_->max_payload();
    for (size_t i = 0; i < batch.count; ++i) {
      const size_t begin = bodies_.size();
      std::string why;
      if (!encoder_.append(batch.rows[i], bodies_, why)) {
        outcomes_[i] = WEP_ROW_REJECTED;
      } else if (const size_t bytes =
                     bodies_.size() - begin + header_bytes(batch.rows[i].event_id.size, config_.stream);
                 max_payload > 0 && static_cast<int64_t>(bytes) > max_payload) {
        outcomes_[i] = WEP_ROW_REJECTED;
        why = "event " + std::string(wep::view(batch.rows[i].event_id)) + " is " + std::to_string(bytes) +
              " bytes with its headers; the servers take at most " + std::to_string(max_payload) + " (max_payload)";
        bodies_.resize(begin);
      } else {
        spans_.push_back({i, begin, bodies_.size() - begin});
        continue;
      }
      if (refused++ < 3) refusals += (refusals.empty() ? "" : "; ") + why;
    }
    messages_.clear();
    for (const Span& span : spans_) {
      messages_.push_back(
          {std::string_view(bodies_).substr(span.offset, span.size), wep::view(batch.rows[span.row].event_id)});
    }

    std::string reason;
    if (!messages_.empty()) {
      wep::nats::BatchResult result = publisher_->publish_batch(messages_);
      if (result.failure == Failure::kPermanent) {
        verdict.failed(result.reason);
        return;
      }
      for (size_t k = 0; k < spans_.size(); ++k) outcomes_[spans_[k].row] = result.outcomes[k];
      reason = result.reason;
      if (result.duplicates > 0) {  // a resend of rows already stored (after a lost acknowledgement or a crash)
        host_.log(WEP_LOG_INFO, "nats transport: " + std::to_string(result.duplicates) + " of " +
                                    std::to_string(messages_.size()) +
                                    " message(s) acknowledged as duplicates (already in the stream, not stored again)");
      }
    }
    if (refused > 0) {
      reason += (reason.empty() ? "" : "; ") + std::to_string(refused) + " row(s) refused: " + refusals;
    }
    verdict.per_row(outcomes_.data(), reason);
  }

  void cancel() noexcept override {
    if (publisher_) publisher_->cancel();
  }

  bool stop(uint32_t timeout_ms) override {
    if (publisher_) publisher_->close(timeout_ms);
    return true;
  }

  std::optional<int64_t> resend_window_ms() const noexcept override {
    const int64_t window = resend_window_ms_.load();
    if (window == kUnknown) return std::nullopt;
    return window;
  }

 private:
  struct Span {
    size_t row;
    size_t offset;
    size_t size;
  };
  static constexpr int64_t kUnknown = INT64_MIN;

  wep::Host host_;
  wep::nats::NatsConfig config_;
  std::unique_ptr<wep::nats::JetStreamPublisher> publisher_;  // set by start()
  std::atomic<int64_t> resend_window_ms_{kUnknown};
  // Per-send buffers, reused (the sending thread's).
  wep::transport::RowEncoder encoder_;
  std::string bodies_;
  std::vector<Span> spans_;
  std::vector<wep::nats::OutgoingMessage> messages_;
  std::vector<uint8_t> outcomes_;
};

}  // namespace

WEP_TRANSPORT_PLUGIN("nats", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<NatsTransport>(host);
})
