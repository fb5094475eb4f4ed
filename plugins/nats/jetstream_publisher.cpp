#include "jetstream_publisher.hpp"

#include <dlfcn.h>
#include <wep/plugin_api.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

namespace wep::nats {
namespace {

using Clock = std::chrono::steady_clock;

// Marks the already loaded library that holds `address` RTLD_NODELETE: it
// stays mapped until the process exits. The handle is never closed, by design.
void keep_mapped(const void* address) noexcept {
  Dl_info info{};
  if (dladdr(address, &info) != 0 && info.dli_fname) dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

// See the header: libnats's threads outlive any one plugin instance, and a
// handler of this plugin they call may still be returning (the last
// instructions after it signalled close()) when the host unloads the plugin;
// so neither libnats nor this plugin's code is ever unmapped once a
// publisher was created.
void pin_libnats_and_this_plugin() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    keep_mapped(reinterpret_cast<const void*>(&natsConnection_Connect));
    keep_mapped(reinterpret_cast<const void*>(&keep_mapped));
  });
}

// "<status text>: <libnats's last error text>" (the latter may be empty).
std::string status_text(natsStatus status) {
  std::string text = natsStatus_GetText(status);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail && *detail && text.find(detail) == std::string::npos) text += std::string(": ") + detail;
  return text;
}

bool is_permanent(natsStatus status) {
  return status == NATS_SSL_ERROR || status == NATS_NOT_PERMITTED || status == NATS_CONNECTION_AUTH_FAILED ||
         status == NATS_SECURE_CONNECTION_REQUIRED || status == NATS_SECURE_CONNECTION_WANTED;
}

}  // namespace

JetStreamPublisher::JetStreamPublisher(NatsConfig config) : config_(std::move(config)) {
  pin_libnats_and_this_plugin();
}

JetStreamPublisher::~JetStreamPublisher() { close(config_.timeout_ms); }

Connected JetStreamPublisher::connect() {
  if (connection_ && natsConnection_IsClosed(connection_)) close(config_.timeout_ms);  // libnats gave up on it
  if (connection_) return {};

  natsOptions* options = nullptr;
  natsStatus status = natsOptions_Create(&options);
  auto fail = [&](const std::string& step) {
    const Connected result{is_permanent(status) ? Failure::kPermanent : Failure::kTransient,
                           step + ": " + status_text(status)};
    if (options) natsOptions_Destroy(options);
    return result;
  };
  if (status != NATS_OK) return fail("cannot create connection options");

  std::vector<const char*> urls;
  for (const std::string& url : config_.servers) urls.push_back(url.c_str());
  // A connection attempt tries each server once: share timeout_ms among them.
  const int64_t per_server_ms =
      std::max<int64_t>(50, static_cast<int64_t>(config_.timeout_ms) / static_cast<int64_t>(urls.size()));
  status = natsOptions_SetServers(options, urls.data(), static_cast<int>(urls.size()));
  if (status == NATS_OK) status = natsOptions_SetTimeout(options, per_server_ms);
  // Once connected, libnats reconnects by itself (to any server of the
  // cluster), forever: sends meanwhile time out and are retried.
  if (status == NATS_OK) status = natsOptions_SetMaxReconnect(options, -1);
  if (status == NATS_OK) status = natsOptions_SetReconnectWait(options, 100);
  if (status == NATS_OK) status = natsOptions_SetErrorHandler(options, &JetStreamPublisher::on_async_error, this);
  if (status == NATS_OK) status = natsOptions_SetClosedCB(options, &JetStreamPublisher::on_closed, this);
  if (status == NATS_OK && config_.tls) status = natsOptions_SetSecure(options, true);
  if (status == NATS_OK && !config_.ca_file.empty())
    status = natsOptions_LoadCATrustedCertificates(options, config_.ca_file.c_str());
  if (status == NATS_OK && !config_.tls_server_name.empty())
    status = natsOptions_SetExpectedHostname(options, config_.tls_server_name.c_str());
  if (status == NATS_OK && !config_.creds_file.empty())
    status = natsOptions_SetUserCredentialsFromFiles(options, config_.creds_file.c_str(), nullptr);
  if (status == NATS_OK && !config_.nkey_seed_file.empty())
    status = natsOptions_SetNKeyFromSeed(options, config_.nkey.c_str(), config_.nkey_seed_file.c_str());
  if (status == NATS_OK && !config_.user.empty())
    status = natsOptions_SetUserInfo(options, config_.user.c_str(), config_.password.c_str());
  if (status == NATS_OK && !config_.inbox_prefix.empty())
    status = natsOptions_SetCustomInboxPrefix(options, config_.inbox_prefix.c_str());
  if (status != NATS_OK) {  // a local set-up problem (e.g. an unusable CA file): not transient
    const Connected result{Failure::kPermanent, "cannot set up the connection options: " + status_text(status)};
    natsOptions_Destroy(options);
    return result;
  }

  {
    std::lock_guard lock(mutex_);
    closed_ = false;
  }
  natsConnection* connection = nullptr;
  status = natsConnection_Connect(&connection, options);
  if (status != NATS_OK) {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    if (connection) natsConnection_Destroy(connection);
    return fail("cannot connect to " + std::to_string(urls.size()) + " server(s)");
  }
  natsOptions_Destroy(options);
  options = nullptr;

  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = config_.timeout_ms;
  js_options.PublishAsync.AckHandler = &JetStreamPublisher::on_ack;
  js_options.PublishAsync.AckHandlerClosure = this;
  jsCtx* js = nullptr;
  status = natsConnection_JetStream(&js, connection, &js_options);
  if (status != NATS_OK) {
    natsConnection_Destroy(connection);
    return fail("cannot create the JetStream context");
  }
  connection_ = connection;
  js_ = js;
  return {};
}

std::optional<StreamFacts> JetStreamPublisher::stream_facts(std::string& why, bool& missing) {
  missing = false;
  if (!js_) {
    why = "not connected";
    return std::nullopt;
  }
  jsStreamInfo* info = nullptr;
  jsErrCode error_code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&info, js_, config_.stream.c_str(), nullptr, &error_code);
  if (status != NATS_OK || !info || !info->Config) {
    if (info) jsStreamInfo_Destroy(info);
    missing = error_code == JSStreamNotFoundErr || status == NATS_NOT_FOUND;
    why = status_text(status);
    return std::nullopt;
  }
  StreamFacts facts;
  facts.duplicate_window_ms = info->Config->Duplicates / 1000000;
  facts.replicas = static_cast<int>(info->Config->Replicas);
  facts.storage = info->Config->Storage == js_MemoryStorage ? "memory" : "file";
  for (int i = 0; i < info->Config->SubjectsLen; ++i) facts.subjects.emplace_back(info->Config->Subjects[i]);
  jsStreamInfo_Destroy(info);
  return facts;
}

int64_t JetStreamPublisher::max_payload() const { return connection_ ? natsConnection_GetMaxPayload(connection_) : 0; }

BatchResult JetStreamPublisher::publish_batch(const std::vector<OutgoingMessage>& messages) {
  BatchResult result;
  result.outcomes.assign(messages.size(), WEP_ROW_RETRY_LATER);
  if (!js_) {
    result.failure = Failure::kTransient;
    result.reason = "not connected";
    return result;
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(config_.timeout_ms);
  std::vector<ptrdiff_t> same_as(messages.size(), -1);  // a message id repeated in the batch
  {
    std::lock_guard lock(mutex_);
    batch_open_ = true;
    cancelled_ = false;
    index_of_id_.clear();
    index_of_id_.reserve(messages.size());
    outcomes_ = &result.outcomes;
    unanswered_ = 0;
    stored_ = duplicates_ = 0;
    refused_ = 0;
    first_error_.clear();
    permission_error_.clear();
  }

  jsPubOptions publish_options;
  jsPubOptions_Init(&publish_options);
  if (!config_.stream.empty()) publish_options.ExpectStream = config_.stream.c_str();
  std::string msg_id;
  std::string publish_error;
  for (size_t i = 0; i < messages.size(); ++i) {
    const OutgoingMessage& message = messages[i];
    msg_id.assign(message.msg_id);
    {
      std::lock_guard lock(mutex_);
      if (cancelled_ || !permission_error_.empty() || closed_) break;
      auto [it, inserted] = index_of_id_.emplace(message.msg_id, i);
      if (!inserted) {
        same_as[i] = static_cast<ptrdiff_t>(it->second);
        continue;
      }
      ++unanswered_;  // before the publish: its acknowledgement may come first
    }
    natsMsg* msg = nullptr;
    natsStatus status = natsMsg_Create(&msg, config_.subject.c_str(), nullptr, message.body.data(),
                                       static_cast<int>(message.body.size()));
    publish_options.MsgId = msg_id.c_str();  // sent as the Nats-Msg-Id header
    if (status == NATS_OK) status = js_PublishMsgAsync(js_, &msg, &publish_options);
    if (status != NATS_OK) {
      natsMsg_Destroy(msg);  // a no-op when the library took it
      const std::string why = status_text(status);
      std::lock_guard lock(mutex_);
      --unanswered_;
      index_of_id_.erase(message.msg_id);
      if (status == NATS_MAX_PAYLOAD) {
        result.outcomes[i] = WEP_ROW_REJECTED;
        ++refused_;
      }
      if (first_error_.empty()) first_error_ = "publish failed: " + why;
      if (status == NATS_CONNECTION_CLOSED || status == NATS_NOT_PERMITTED) break;
    }
  }

  std::unique_lock lock(mutex_);
  progress_.wait_until(lock, deadline,
                       [&] { return unanswered_ == 0 || cancelled_ || !permission_error_.empty() || closed_; });
  batch_open_ = false;
  outcomes_ = nullptr;
  const size_t unanswered = unanswered_;
  const bool cancelled = cancelled_;
  const bool closed = closed_;
  result.stored = stored_;
  result.duplicates = duplicates_;
  const std::string first_error = first_error_;
  const std::string permission_error = permission_error_;
  const size_t refused = refused_;
  lock.unlock();

  // Take back what was not acknowledged: the library forgets those messages,
  // and an acknowledgement that still comes is dropped (the row is sent
  // again and the stream answers it as a duplicate).
  if (unanswered > 0 && js_) {
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
  }

  for (size_t i = 0; i < messages.size(); ++i) {
    if (same_as[i] >= 0) result.outcomes[i] = result.outcomes[static_cast<size_t>(same_as[i])];
  }
  const size_t not_delivered = static_cast<size_t>(
      std::count_if(result.outcomes.begin(), result.outcomes.end(), [](uint8_t o) { return o != WEP_ROW_DELIVERED; }));
  if (!permission_error.empty()) {
    result.failure = Failure::kPermanent;
    result.reason = permission_error;
    if (permission_error.find("Subscription") != std::string::npos && config_.inbox_prefix.empty()) {
      result.reason +=
          " (the user may not subscribe to acknowledgements: set inbox_prefix to a subject it may "
          "subscribe below)";
    }
  } else if (not_delivered > 0) {
    std::string text = std::to_string(not_delivered) + " of " + std::to_string(messages.size()) + " message(s) ";
    if (cancelled) {
      text += "not acknowledged: cancelled";
    } else if (closed) {
      text += "not acknowledged: the connection was closed";
    } else if (unanswered > 0) {
      text += "not acknowledged within " + std::to_string(config_.timeout_ms) + " ms";
    } else {
      text += "not stored";
    }
    if (refused > 0) text += "; " + std::to_string(refused) + " refused for good";
    if (!first_error.empty()) text += "; " + first_error;
    result.reason = std::move(text);
  }
  return result;
}

void JetStreamPublisher::on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) noexcept {
  auto& self = *static_cast<JetStreamPublisher*>(closure);
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) id = nullptr;
  {
    std::lock_guard lock(self.mutex_);
    ++self.handlers_running_;
    if (self.batch_open_ && id) {
      auto it = self.index_of_id_.find(std::string_view(id));
      if (it != self.index_of_id_.end()) {
        const size_t index = it->second;
        self.index_of_id_.erase(it);  // one answer per message
        --self.unanswered_;
        if (ack) {
          (*self.outcomes_)[index] = WEP_ROW_DELIVERED;
          ++(ack->Duplicate ? self.duplicates_ : self.stored_);
        } else if (error) {
          std::string why;
          if (error->ErrCode == JSStreamMessageExceedsMaximumErr) {
            (*self.outcomes_)[index] = WEP_ROW_REJECTED;  // the stream's max_msg_size: for good
            ++self.refused_;
            why = "refused by the stream: ";
          } else if (error->Err == NATS_NO_RESPONDERS) {
            why =
                "no responders (no stream leader for the subject: an election under way, no quorum, or no "
                "stream captures it): ";
          } else if (error->ErrCode == JSStreamNotMatchErr) {
            why = "the subject is not captured by stream '" + self.config_.stream + "': ";
          }
          why += error->ErrText ? error->ErrText : natsStatus_GetText(error->Err);
          if (error->ErrCode != 0) why += " (JetStream error " + std::to_string(error->ErrCode) + ")";
          if (self.first_error_.empty()) self.first_error_ = std::move(why);
        }
        if (self.unanswered_ == 0) self.progress_.notify_all();
      }
    }
    --self.handlers_running_;
    if (self.handlers_running_ == 0) self.handlers_idle_.notify_all();
  }
  natsMsg_Destroy(msg);  // the handler owns it
}

void JetStreamPublisher::on_async_error(natsConnection*, natsSubscription*, natsStatus status, void* closure) noexcept {
  if (status != NATS_NOT_PERMITTED) return;  // others (slow consumer...) show up as missing acknowledgements
  auto& self = *static_cast<JetStreamPublisher*>(closure);
  // The callback thread's own copy of the server's text: the connection's error buffer
  // (natsConnection_GetLastError) is rewritten by libnats's reader thread while we would read it.
  const char* text = nats_GetLastError(nullptr);
  std::lock_guard lock(self.mutex_);
  if (self.permission_error_.empty()) {
    self.permission_error_ = std::string("permission denied: ") + (text && *text ? text : natsStatus_GetText(status));
  }
  self.progress_.notify_all();
}

void JetStreamPublisher::on_closed(natsConnection*, void* closure) noexcept {
  auto& self = *static_cast<JetStreamPublisher*>(closure);
  std::lock_guard lock(self.mutex_);
  self.closed_ = true;
  self.progress_.notify_all();
  self.handlers_idle_.notify_all();
}

void JetStreamPublisher::cancel() noexcept {
  std::lock_guard lock(mutex_);
  if (!batch_open_) return;
  cancelled_ = true;
  progress_.notify_all();
}

void JetStreamPublisher::close(uint32_t timeout_ms) noexcept {
  if (!connection_) return;
  if (js_) jsCtx_Destroy(js_);  // abandons what is still pending
  js_ = nullptr;
  natsConnection_Close(connection_);
  {
    // The closed callback is queued after every earlier callback of this
    // connection: once it ran (and no handler is inside), none comes again.
    std::unique_lock lock(mutex_);
    handlers_idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return closed_ && handlers_running_ == 0; });
  }
  natsConnection_Destroy(connection_);
  connection_ = nullptr;
}

}  // namespace wep::nats
