// A loopback PostgREST-speaking HTTPS backend for tests, demos and benchmarks.
//
// It speaks the wire contract of the Supabase transport:
//   POST /rest/v1/{table}?on_conflict=event_id
//   apikey: {api_key}
//   Authorization: Bearer {api_key}   required when api_key is a JWT (eyJ...),
//                                     optional otherwise (if sent, it must match)
//   Content-Type: application/json
//   Prefer: return=minimal, resolution=ignore-duplicates
//   body: a JSON array of row objects, validated against
//         schemas/postgrest_insert_body.schema.json
// and answers 201 with an empty body, storing rows by event_id and ignoring
// ids it already holds. A request that breaks the contract is answered with
// 400 (401 for a wrong key, 404 for another table, 415 for another content
// type) and counted as a contract violation. Error answers carry PostgREST's
// error object ({"code","details","hint","message"}) with the code PostgREST
// 12 gives for a typical cause of the status (e.g. 400 PGRST204, 500 57014).
//
// Faults are injected on demand. "Next N" faults apply to the next N insert
// requests (POSTs that reached the fault stage), one each, in this order of
// precedence: reset before reply, slow reply, injected status, reset after
// store. Body-size and event-type rules stay until changed.
//
// Thread safety: every public member function may be called from any thread
// while the server runs. The server binds 127.0.0.1 only (port 0: an
// ephemeral port) and stops in the destructor. Constructing a Backend sets
// SIGPIPE to SIG_IGN process-wide (a client giving up mid-reply must not kill
// the test process).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wep::test {

// Paths of the certificates generated at build time (target wep_test_certs,
// into certs/ at the top of the build tree). All PEM files.
struct TestCertificates {
  std::string ca_file;      // the trusted test CA
  std::string server_cert;  // CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca_file
  std::string server_key;
  std::string untrusted_ca_file;      // a second CA that no client trusts
  std::string untrusted_server_cert;  // same names as server_cert, signed by untrusted_ca_file
  std::string untrusted_server_key;
  std::string other_host_cert;  // signed by ca_file but only for DNS:other-host.invalid
  std::string other_host_key;
};

// The certificates of this build tree.
const TestCertificates& test_certificates();

struct BackendOptions {
  std::string cert_file;  // server certificate chain (PEM); empty: test_certificates().server_cert
  std::string key_file;   // its private key (PEM); empty: test_certificates().server_key
  std::string api_key = "test-anon-key";
  std::string table = "analytics_events";
  uint16_t port = 0;  // 0: an ephemeral port
  // When not empty: stored rows are appended to this file (one JSON object
  // per line) and loaded from it at start, so rows survive a backend restart.
  std::string persist_file;
  // Called once per request with a one-line summary (method, target, status,
  // rows stored / duplicates). Called from server threads; must be thread-safe.
  std::function<void(const std::string&)> request_log;
  int max_threads = 8;  // concurrent connections served
  // Serve plain HTTP instead of HTTPS (cert_file/key_file unused); url() and
  // ip_url() then start with http://. For testing a transport's http path.
  bool plain_http = false;
};

// One stored row, as received.
struct StoredRow {
  std::string event_id;
  std::string event_type;
  std::string properties_json;         // compact JSON text of the object, or "null"
  std::optional<std::string> user_id;  // nullopt for JSON null
  std::string created_at;              // exactly as received
  uint64_t request_number = 0;         // which request (1-based, see Counters::requests) stored it
};

// The last POST the backend received (whatever its outcome).
struct ReceivedRequest {
  std::string method;
  std::string uri;                             // path and query, e.g. /rest/v1/analytics_events?on_conflict=event_id
  std::map<std::string, std::string> headers;  // names lower-cased; last value wins
  std::string body;
};

// Counters count what this Backend object saw; rows loaded from
// persist_file appear in rows()/row_count() but not in rows_stored.
struct Counters {
  uint64_t requests = 0;                        // every HTTP request received
  uint64_t insert_requests = 0;                 // POSTs to /rest/v1/{table}
  uint64_t connections = 0;                     // TCP connections accepted
  uint64_t rows_stored = 0;                     // distinct event ids stored
  uint64_t duplicates_ignored = 0;              // rows whose event id was already stored
  uint64_t contract_violations = 0;             // requests refused for breaking the contract
  uint64_t resets = 0;                          // connections reset on purpose
  uint64_t delayed = 0;                         // replies held back on purpose (started)
  uint64_t delayed_in_progress = 0;             // replies being held back right now
  std::map<int, uint64_t> responses_by_status;  // status -> count (not resets)
};

class Backend {
 public:
  // Starts listening at once. Throws std::runtime_error when it cannot.
  explicit Backend(BackendOptions options = {});
  ~Backend();  // stops: aborts held replies and open connections, joins threads
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  uint16_t port() const;
  // https://localhost:<port> -- use it as the transport's `url`
  // (localhost resolves to 127.0.0.1, where the server listens; the test
  // certificate names both localhost and 127.0.0.1).
  std::string url() const;
  // https://127.0.0.1:<port>
  std::string ip_url() const;
  const std::string& api_key() const;
  const std::string& table() const;

  // Stops serving (idempotent): later requests fail to connect.
  void stop();

  // ---- fault injection; each setter is thread-safe and takes effect for
  // the next request that reaches the fault stage.

  // The next `count` insert requests are answered with `status` (e.g. 500,
  // 503, 401, 403, 404, 408) and a small JSON error body; nothing is stored.
  void fail_next(int count, int status);
  // The next `count` insert requests get 429 with `Retry-After: retry_after`
  // (seconds, e.g. "2", or an HTTP-date); nothing is stored.
  void throttle_next(int count, const std::string& retry_after);
  // Bodies larger than `max_bytes` get 413; 0 turns the rule off.
  void set_max_body_bytes(size_t max_bytes);
  // A batch containing a row of this event type gets `status` (400 or 409)
  // and nothing of it is stored; empty turns the rule off.
  void reject_event_type(const std::string& event_type, int status = 400);
  // The next `count` insert requests: the body is read, then the connection
  // is reset without a reply; nothing is stored.
  void reset_before_reply_next(int count);
  // The next `count` insert requests: rows are stored, then the connection is
  // reset without a reply (the client never hears of the success).
  void reset_after_store_next(int count);
  // The next `count` insert requests: the reply is held for `delay` (or until
  // release_delayed() or stop()), then processed normally (stored, 201).
  void delay_next(int count, std::chrono::milliseconds delay);
  // The next `count` insert requests: rows are stored, then the reply is
  // held for `delay` (or until release_delayed() or stop()): a slow reply to
  // a request the server has already applied.
  void delay_reply_after_store_next(int count, std::chrono::milliseconds delay);
  // Ends every hold now (held requests proceed normally).
  void release_delayed();
  // Turns on a standing fault (every insert meets it until cleared), named
  // as on test-backend's command line, e.g. "400-all", "retry-after-0",
  // "status:200-html"; the list is fault_help(). Throws
  // std::invalid_argument for an unknown or malformed spec.
  void set_fault(const std::string& spec);
  // One line per fault spec, for --help.
  static const char* fault_help();
  // Clears every fault rule and pending "next N" fault.
  void clear_faults();

  // ---- observation

  Counters counters() const;
  std::vector<StoredRow> rows() const;  // in storing order
  size_t row_count() const;
  std::optional<StoredRow> row(const std::string& event_id) const;
  std::optional<ReceivedRequest> last_insert_request() const;
  // Human-readable reasons of the contract violations seen so far.
  std::vector<std::string> contract_violations() const;

  // Blocks until `condition(counters())` holds or `timeout` passes; returns
  // whether it holds. Re-evaluated after every request and connection.
  bool wait_until(const std::function<bool(const Counters&)>& condition, std::chrono::milliseconds timeout) const;
  bool wait_for_rows(size_t count, std::chrono::milliseconds timeout) const;

  // The stored rows as a JSON array (what GET /rest/v1/{table} returns).
  std::string rows_json() const;

  struct Impl;

 private:
  void update(const std::function<void(Impl&)>& change);  // change runs under the backend's lock
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep::test
