// HttpConnection: one kept-alive HTTP/1.1 connection (HTTPS through Poco
// NetSSL, or plain HTTP) that a transport posts requests over, each phase
// bounded in time and cancellable from another thread.
//
// TLS: the peer certificate chain is verified by OpenSSL against ca_file or
// the system CA store, and the host name is checked twice (by OpenSSL during
// the handshake and by Poco after it). The SSL_CTX's verify callback is
// OpenSSL's default, not Poco's SSLManager callback, so an invalid
// certificate ends the handshake and no InvalidCertificateHandler (the
// default one prompts on the console) is ever consulted. Never touches the
// process-wide SSLManager and never calls uninitializeSSL() (which would shut
// the host's SSLManager down).
//
// Connections: one connection is kept alive and reused between requests; it
// is dropped after any error, after an idle spell, or when the peer closed
// it, and the next post connects again. The connection owns the socket from
// its creation, so cancel() can shut it down from another thread through a
// duplicate descriptor that lives exactly as long as the connection.
//
// Time: the name lookup, TCP connect and TLS handshake together, then the
// exchange, are each bounded by timeout_ms (a watchdog thread shuts the
// socket down at the deadline; the lookup runs on glibc's asynchronous
// resolver and is abandoned at the deadline).
//
// Thread safety: post() from one thread at a time; cancel() from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wep::supabase {

struct HttpEndpoint {
  bool https = true;
  std::string host;  // no brackets for IPv6
  uint16_t port = 443;
  std::string ca_file;  // empty: the system CA store
  uint32_t timeout_ms = 10000;
};

struct HttpAnswer {
  enum class Outcome {
    kAnswered,            // status, retry_after and body are set
    kCancelled,           // cancel() ended it
    kTimedOut,            // a phase passed timeout_ms
    kCertificateRefused,  // the server's certificate did not verify
    kNetworkError,        // lookup, connect, TLS or I/O failed
  };
  Outcome outcome = Outcome::kNetworkError;
  int status = 0;
  std::optional<std::string> retry_after;  // the Retry-After header, if any
  std::string body;                        // at most its first 64 KiB
  std::string error;                       // why, for every outcome but kAnswered
};

class HttpConnection {
 public:
  // Sets up TLS for an https endpoint and starts the watchdog thread. Throws
  // wep::Error(WEP_ERR_INVALID_ARGUMENT) naming 'ca_file' or 'url' when TLS
  // cannot be set up for it.
  explicit HttpConnection(HttpEndpoint endpoint);
  ~HttpConnection();  // closes the connection, joins the watchdog
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // POSTs `body` to `target` (path and query, sent exactly as given) with
  // `headers` (name, value; Host and Content-Length are set here). Never
  // throws for network trouble: the outcome says what happened.
  HttpAnswer post(const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& body);

  // Makes an in-flight post() return soon with kCancelled. Never blocks for
  // long; a no-op when nothing is in flight.
  void cancel() noexcept;

  // Closes the connection (with a TLS close_notify when healthy).
  void close() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep::supabase
