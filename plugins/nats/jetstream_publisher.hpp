// JetStreamPublisher: one connection to a NATS cluster (libnats) and the
// asynchronous publish of a batch of messages with one acknowledgement each.
//
// Threads: publish_batch(), connect(), check_stream() and close() are called
// from one thread at a time (the transport's sending thread); cancel() from
// any thread. libnats calls the acknowledgement and error handlers on its own
// threads; they only touch the state guarded by `mutex_`.
//
// Lifetime: libnats keeps process-wide threads once used, and they call this
// plugin's handlers; a handler that has signalled close() still executes its
// last instructions. So the first publisher created pins libnats and the
// plugin's own file in memory (RTLD_NODELETE): the plugin may be unloaded
// (its instances are destroyed), its code stays mapped until the process
// exits. close() waits until no handler of this publisher is inside its
// work any more.
#pragma once

#include <nats/nats.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nats_config.hpp"

namespace wep::nats {

// How a connection attempt or a whole send ended, apart from the rows.
enum class Failure {
  kNone,       // connected / every row has its outcome
  kTransient,  // the cluster is unreachable, without quorum, or slow: retry
  kPermanent,  // TLS refused, authentication or permission refused: retry slowly
};

struct Connected {
  Failure failure = Failure::kNone;
  std::string reason;  // for kTransient / kPermanent; no secret in it
};

// One message to publish: the body and the id for Nats-Msg-Id.
struct OutgoingMessage {
  std::string_view body;
  std::string_view msg_id;
};

// Outcome per message, as WEP_ROW_* (0 retry later, 1 rejected, 2 delivered).
struct BatchResult {
  std::vector<uint8_t> outcomes;
  Failure failure = Failure::kNone;  // kPermanent: a permission error stopped the batch
  std::string reason;                // why rows are not delivered; empty when all are
  int64_t stored = 0;                // acknowledged as newly stored
  int64_t duplicates = 0;            // acknowledged as duplicates (already in the stream)
};

// The stream as read at start.
struct StreamFacts {
  int64_t duplicate_window_ms = 0;
  int replicas = 0;
  std::string storage;  // "file" or "memory"
  std::vector<std::string> subjects;
};

class JetStreamPublisher {
 public:
  explicit JetStreamPublisher(NatsConfig config);
  ~JetStreamPublisher();  // close()
  JetStreamPublisher(const JetStreamPublisher&) = delete;
  JetStreamPublisher& operator=(const JetStreamPublisher&) = delete;

  // Connects when not connected (a connection libnats gave up on is
  // replaced). Bounded by about timeout_ms over all servers.
  Connected connect();
  bool connected() const { return connection_ != nullptr; }

  // The stream's facts, or why they could not be read (`missing` set when
  // the server says the stream does not exist). Needs a connection.
  std::optional<StreamFacts> stream_facts(std::string& why, bool& missing);

  // Largest message the servers take (body + headers), 0 when not connected.
  int64_t max_payload() const;

  // Publishes every message (asynchronously), then waits until each is
  // acknowledged, or timeout_ms passed, or cancel(), or a permission error.
  // Messages with no acknowledgement by then are RETRY_LATER (the library
  // forgets them, so a late acknowledgement is ignored). Needs a connection.
  BatchResult publish_batch(const std::vector<OutgoingMessage>& messages);

  // Makes a publish_batch() in progress return soon. Never blocks for long.
  void cancel() noexcept;

  // Closes the connection (pending publishes are abandoned) and waits, at
  // most timeout_ms, until no handler of this publisher runs.
  void close(uint32_t timeout_ms) noexcept;

 private:
  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) noexcept;
  static void on_async_error(natsConnection* nc, natsSubscription* sub, natsStatus status, void* closure) noexcept;
  static void on_closed(natsConnection* nc, void* closure) noexcept;
  void destroy_connection() noexcept;

  const NatsConfig config_;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;

  // Guards the batch state below, shared with libnats's handler threads.
  std::mutex mutex_;
  std::condition_variable progress_;  // an ack arrived, an error, a cancel
  bool batch_open_ = false;
  std::unordered_map<std::string_view, size_t> index_of_id_;  // views into the caller's messages
  std::vector<uint8_t>* outcomes_ = nullptr;                  // the open batch's
  size_t unanswered_ = 0;
  int64_t stored_ = 0, duplicates_ = 0;
  std::string first_error_;       // first per-message error of the batch
  size_t refused_ = 0;            // messages the stream refused for good
  std::string permission_error_;  // an asynchronous permission violation
  bool cancelled_ = false;
  bool closed_ = true;  // libnats reported the connection closed (or none yet)
  int handlers_running_ = 0;
  std::condition_variable handlers_idle_;
};

}  // namespace wep::nats
