// The `supabase` transport plugin: sends batches of analytics rows to a
// Supabase (PostgREST) table over HTTPS with Poco Net + NetSSL.
//
// Wire contract:
//   POST {url}/rest/v1/{table}?on_conflict=event_id
//   apikey: {api_key}
//   Authorization: Bearer {api_key}
//   Content-Type: application/json
//   Prefer: return=minimal, resolution=ignore-duplicates
//   body: [{"event_id", "event_type", "properties", "user_id", "created_at"}, ...]
//
// TLS: the peer certificate chain is verified by OpenSSL against ca_file or
// the system CA store, and the host name is checked twice (by OpenSSL during
// the handshake and by Poco after it). The SSL_CTX's verify callback is
// OpenSSL's default, not Poco's SSLManager callback, so an invalid
// certificate ends the handshake and no InvalidCertificateHandler (the
// default one prompts on the console) is ever consulted. The plugin never
// touches the process-wide SSLManager and never calls uninitializeSSL()
// (which would shut the host's SSLManager down).
//
// Connections: one connection is kept alive and reused between batches; it
// is dropped after any error, after an idle spell, or when the peer closed it,
// and the next send connects again. The plugin owns the socket from its
// creation, so cancel() can shut it down from another thread through a
// duplicate descriptor that lives exactly as long as the connection.
#include <Poco/Crypto/OpenSSLInitializer.h>
#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wep/version.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <wep/plugin.hpp>
#include <wep_support/transport_json.hpp>

#include "supabase_config_schema.h"

namespace {

constexpr uint32_t kDefaultTimeoutMs = 10000;
constexpr const char* kDefaultTable = "analytics_events";
// A kept-alive connection idle longer than this is replaced rather than
// reused: servers close idle connections and a request racing that close
// would fail for nothing.
constexpr auto kMaxIdleBeforeReconnect = std::chrono::seconds(20);
// How much of an error response body goes into a verdict's reason.
constexpr size_t kMaxReasonBodyBytes = 300;
// Response bodies longer than this are not drained; the connection is dropped.
constexpr size_t kMaxDrainBytes = 1 << 20;

// Blocks SIGPIPE on the calling thread while alive and swallows one raised
// meanwhile. OpenSSL writes to sockets without MSG_NOSIGNAL, and a write to
// a connection the peer has reset would otherwise kill the host process.
// Thread-local effect only: the process-wide disposition is left alone.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &sigpipe_, &previous_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec no_wait{0, 0};
        while (sigtimedwait(&sigpipe_, nullptr, &no_wait) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t sigpipe_;
  sigset_t previous_;
  bool was_pending_ = false;
};

struct Config {
  bool https = true;
  std::string host;  // no brackets for IPv6
  uint16_t port = 443;
  std::string host_header;    // Host: value
  std::string target;         // /rest/v1/{table}?on_conflict=event_id (after any path prefix)
  std::string display_url;    // {url}/rest/v1/{table}, for messages
  std::string api_key;        // secret-ish: never logged, never in a reason
  std::string authorization;  // "Bearer {api_key}", the same care
  std::string table = kDefaultTable;
  std::string ca_file;  // empty: the system CA store
  uint32_t timeout_ms = kDefaultTimeoutMs;
};

[[noreturn]] void refuse(const std::string& what) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "supabase config: " + what);
}

Config read_config(const wep::Host& host) {
  rapidjson::Document json;
  wep::transport::parse_config("supabase", host.config_json(), supabase_config_schema, json);

  Config config;
  config.api_key = json["api_key"].GetString();
  config.authorization = "Bearer " + config.api_key;
  if (json.HasMember("table")) config.table = json["table"].GetString();
  if (json.HasMember("timeout_ms")) config.timeout_ms = json["timeout_ms"].GetUint();
  if (json.HasMember("ca_file")) {
    std::filesystem::path ca = json["ca_file"].GetString();
    if (ca.is_relative()) ca = std::filesystem::path(std::string(host.data_dir())) / ca;
    std::ifstream probe(ca);
    if (!probe || std::filesystem::is_directory(ca))
      refuse("key 'ca_file': cannot read the file '" + ca.string() + "'");
    config.ca_file = ca.string();
  }

  const std::string url = json["url"].GetString();
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception& e) {
    refuse("key 'url' is not a valid URL: " + e.displayText());
  }
  const std::string scheme = Poco::toLower(uri.getScheme());
  if (scheme != "https" && scheme != "http") refuse("key 'url' must start with https://");
  if (uri.getHost().empty()) refuse("key 'url' has no host");
  if (!uri.getUserInfo().empty()) refuse("key 'url' must not carry user info");
  if (!uri.getRawQuery().empty() || !uri.getFragment().empty()) refuse("key 'url' must not have a query or fragment");
  config.https = scheme == "https";
  config.host = uri.getHost();
  config.port = uri.getPort();
  const bool default_port = config.port == (config.https ? 443 : 80);
  const std::string bracketed = config.host.find(':') != std::string::npos ? "[" + config.host + "]" : config.host;
  config.host_header = default_port ? bracketed : bracketed + ":" + std::to_string(config.port);
  std::string prefix = uri.getPath();
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  config.target = prefix + "/rest/v1/" + config.table + "?on_conflict=event_id";
  config.display_url = scheme + "://" + config.host_header + prefix + "/rest/v1/" + config.table;
  return config;
}

// Retry-After as milliseconds from now: delta-seconds or an HTTP-date.
std::optional<int64_t> parse_retry_after_ms(std::string value) {
  Poco::trimInPlace(value);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    if (value.size() > 9) return std::nullopt;
    return std::stoll(value) * 1000;
  }
  Poco::DateTime date;
  int tzd = 0;
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, value, date, tzd) &&
      !Poco::DateTimeParser::tryParse(value, date, tzd))
    return std::nullopt;
  date.makeUTC(tzd);
  const Poco::Timestamp::TimeDiff diff_us = date.timestamp() - Poco::Timestamp();
  return diff_us > 0 ? diff_us / 1000 : 0;
}

// The status code as a number. Poco keeps it in an HTTPStatus enum, which a
// code such as 899 does not fit (reading it back through getStatus() is
// undefined behaviour), so it is read from the status line Poco writes.
int status_code_of(const Poco::Net::HTTPResponse& response) {
  std::ostringstream head;
  response.write(head);  // "HTTP/1.1 899 Reason\r\n..."
  const std::string text = head.str();
  const size_t space = text.find(' ');
  if (space == std::string::npos) return 0;
  int status = 0;
  for (size_t i = space + 1; i < text.size() && i < space + 4 && text[i] >= '0' && text[i] <= '9'; ++i)
    status = status * 10 + (text[i] - '0');
  return status;
}

std::string excerpt(const std::string& body) {
  std::string text = body.substr(0, kMaxReasonBodyBytes);
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  if (body.size() > kMaxReasonBodyBytes) text += "...";
  return text.empty() ? "(empty body)" : text;
}

bool is_certificate_error(const Poco::Exception& e) {
  if (dynamic_cast<const Poco::Net::CertificateValidationException*>(&e)) return true;
  const std::string text = Poco::toLower(e.displayText());
  return text.find("certificate verify failed") != std::string::npos ||
         text.find("unacceptable certificate") != std::string::npos;
}

class SupabaseTransport final : public wep::TransportPlugin {
 public:
  explicit SupabaseTransport(wep::Host host) : host_(host) { Poco::Crypto::OpenSSLInitializer::initialize(); }

  ~SupabaseTransport() override {
    stop_watchdog();
    drop_connection(false);
    context_.reset();
    Poco::Crypto::OpenSSLInitializer::uninitialize();
  }

  void start() override {
    config_ = read_config(host_);
    if (config_.https) context_ = make_context();
    if (!watchdog_.joinable()) watchdog_ = std::thread([this] { watch_deadlines(); });
    started_ = true;
    host_.log(WEP_LOG_INFO, "supabase transport: sending to " + config_.display_url +
                                (config_.https ? (config_.ca_file.empty() ? " (system CA store)"
                                                                          : " (CA file " + config_.ca_file + ")")
                                               : " (plain http: not for production)"));
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    SigpipeGuard sigpipe_guard;
    if (!started_) {
      verdict.failed("supabase transport is not started");
      return;
    }
    if (!encode(batch, verdict)) return;

    {
      std::lock_guard lock(cancel_mutex_);
      in_flight_ = true;
      cancel_requested_ = false;
    }
    post(verdict);
    bool cancelled = false;
    {
      std::lock_guard lock(cancel_mutex_);
      cancelled = cancel_requested_;
      in_flight_ = false;
      cancel_requested_ = false;
    }
    if (cancelled) drop_connection(false);  // its socket may have been shut down
  }

  void cancel() noexcept override {
    std::lock_guard lock(cancel_mutex_);
    if (!in_flight_) return;
    cancel_requested_ = true;
    if (cancel_fd_ >= 0) ::shutdown(cancel_fd_, SHUT_RDWR);  // wakes a blocked connect/read/write
  }

  bool stop(uint32_t) override {
    SigpipeGuard sigpipe_guard;
    stop_watchdog();
    drop_connection(true);
    started_ = false;
    return true;
  }

 private:
  struct Connection {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    std::optional<Poco::Net::SecureStreamSocket> tls_socket;  // to abort without a TLS shutdown
    std::chrono::steady_clock::time_point last_used;
  };

  struct Cancelled : std::exception {
    const char* what() const noexcept override { return "cancelled"; }
  };

  Poco::Net::Context::Ptr make_context() const {
    Poco::Net::Context::Params params;
    params.verificationMode = Poco::Net::Context::VERIFY_STRICT;  // STRICT: Poco checks the name even for localhost
    params.verificationDepth = 9;
    params.caLocation = config_.ca_file;
    params.loadDefaultCAs = config_.ca_file.empty();
    Poco::Net::Context::Ptr context;
    try {
      context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
      context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    } catch (const Poco::Exception& e) {
      refuse((config_.ca_file.empty() ? std::string("cannot set up TLS: ") : "key 'ca_file': cannot load CA file: ") +
             e.displayText());
    }
    SSL_CTX* ctx = context->sslContext();
    // OpenSSL's own verification decides; no SSLManager callback (see top).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    Poco::Net::IPAddress ip;
    const int ok = Poco::Net::IPAddress::tryParse(config_.host, ip)
                       ? X509_VERIFY_PARAM_set1_ip_asc(param, config_.host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, config_.host.c_str(), config_.host.size());
    if (ok != 1) refuse("key 'url': cannot use host '" + config_.host + "' for certificate verification");
    return context;
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

  // True when the kept connection must not be reused.
  bool connection_is_stale() {
    if (!connection_.session || !connection_.session->connected()) return true;
    if (std::chrono::steady_clock::now() - connection_.last_used > kMaxIdleBeforeReconnect) return true;
    int fd = -1;
    {
      std::lock_guard lock(cancel_mutex_);
      fd = cancel_fd_;
    }
    if (fd < 0) return true;
    // An idle connection has nothing to read: readable means the peer closed
    // it (FIN, RST or a TLS close_notify).
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }

  void connect() {
    const Poco::Timespan timeout(static_cast<Poco::Timespan::TimeDiff>(config_.timeout_ms) * 1000);
    {
      std::lock_guard lock(cancel_mutex_);
      if (cancel_requested_) throw Cancelled();
    }
    const Poco::Net::SocketAddress address = resolve();
    Poco::Net::StreamSocket tcp(address.family());
    const int duplicate = ::fcntl(tcp.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
    if (duplicate < 0) throw Poco::IOException("cannot duplicate a socket descriptor");
    {
      std::lock_guard lock(cancel_mutex_);
      cancel_fd_ = duplicate;
      if (cancel_requested_) throw Cancelled();
    }
    tcp.connect(address, timeout);
    tcp.setNoDelay(true);
    tcp.setReceiveTimeout(timeout);
    tcp.setSendTimeout(timeout);
    if (config_.https) {
      Poco::Net::SecureStreamSocket tls = Poco::Net::SecureStreamSocket::attach(tcp, config_.host, context_);
      connection_.tls_socket = tls;
      // A plain HTTPClientSession over the TLS socket (all I/O goes through
      // the socket's virtual implementation). HTTPSClientSession's socket
      // constructor cannot take a connected socket in Poco 1.11 (it sets the
      // port afterwards and throws IllegalStateException).
      connection_.session = std::make_unique<Poco::Net::HTTPClientSession>(tls);
    } else {
      connection_.session = std::make_unique<Poco::Net::HTTPClientSession>(tcp);
    }
    connection_.session->setKeepAlive(true);
    connection_.session->setTimeout(timeout);
  }

  // The address of config_.host, looked up by glibc's asynchronous resolver
  // so that the lookup is bounded like every other phase: it gives up when
  // the phase deadline passes or cancel() is called (a blocking
  // getaddrinfo() can take tens of seconds when the name servers do not
  // answer, e.g. right after the device went offline). A lookup that cannot
  // be cancelled is abandoned to glibc's own thread together with the small
  // block it writes into, which is then deliberately never freed: that
  // thread runs libc code only, so it is safe even after this plugin is
  // unloaded. IP literals need no lookup.
  Poco::Net::SocketAddress resolve() {
    Poco::Net::IPAddress literal;
    if (Poco::Net::IPAddress::tryParse(config_.host, literal)) return Poco::Net::SocketAddress(literal, config_.port);
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer cannot follow the threads glibc starts for
    // getaddrinfo_a (they crash in its allocator), so TSan builds look names
    // up blocking; every other build runs the bounded lookup below.
    return Poco::Net::SocketAddress(config_.host, config_.port);
#endif

    struct Lookup {
      std::string name;
      std::string service;
      addrinfo hints{};
      gaicb request{};
    };
    auto lookup = std::make_unique<Lookup>();
    lookup->name = config_.host;
    lookup->service = std::to_string(config_.port);
    lookup->hints.ai_family = AF_UNSPEC;
    lookup->hints.ai_socktype = SOCK_STREAM;
    lookup->hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    lookup->request.ar_name = lookup->name.c_str();
    lookup->request.ar_service = lookup->service.c_str();
    lookup->request.ar_request = &lookup->hints;
    gaicb* requests[] = {&lookup->request};
    sigevent no_signal{};
    no_signal.sigev_notify = SIGEV_NONE;
    if (const int rc = getaddrinfo_a(GAI_NOWAIT, requests, 1, &no_signal); rc != 0) {
      throw Poco::Net::HostNotFoundException(config_.host, std::string("cannot start the lookup: ") + gai_strerror(rc));
    }
    int status;
    while ((status = gai_error(&lookup->request)) == EAI_INPROGRESS) {
      if (was_cancelled() || deadline_passed()) {
        if (gai_cancel(&lookup->request) == EAI_NOTCANCELED) {
          (void)lookup.release();  // still in glibc's hands: abandoned, see above
        } else if (gai_error(&lookup->request) == 0 && lookup->request.ar_result) {
          freeaddrinfo(lookup->request.ar_result);  // finished meanwhile
        }
        if (was_cancelled()) throw Cancelled();
        throw Poco::TimeoutException("looking up " + config_.host);
      }
      const timespec slice{0, 20 * 1000 * 1000};  // checks cancel() and the deadline every 20 ms
      gai_suspend(requests, 1, &slice);
    }
    addrinfo* found = lookup->request.ar_result;
    if (status != 0 || !found) {
      if (found) freeaddrinfo(found);
      throw Poco::Net::HostNotFoundException(config_.host, status != 0 ? gai_strerror(status) : "no address");
    }
    const Poco::Net::SocketAddress address(found->ai_addr, static_cast<poco_socklen_t>(found->ai_addrlen));
    freeaddrinfo(found);
    return address;
  }

  // Closes the connection. `orderly`: with a TLS close_notify (only for a
  // healthy connection); otherwise aborted at the TCP level.
  void drop_connection(bool orderly) noexcept {
    SigpipeGuard sigpipe_guard;
    int fd = -1;
    {
      std::lock_guard lock(cancel_mutex_);
      fd = cancel_fd_;
      cancel_fd_ = -1;
    }
    try {
      if (!orderly && connection_.tls_socket) connection_.tls_socket->abort();
    } catch (...) {
    }
    try {
      connection_.session.reset();
    } catch (...) {
    }
    try {
      connection_.tls_socket.reset();
    } catch (...) {
    }
    if (fd >= 0) ::close(fd);
  }

  void post(wep::Verdict& verdict) {
    const std::string timeout_text = std::to_string(config_.timeout_ms) + " ms";
    try {
      if (connection_.session && connection_is_stale()) drop_connection(false);
      if (!connection_.session) {
        arm_deadline();  // connection set-up: at most timeout_ms
        connect();
      }
      arm_deadline();  // the exchange: at most timeout_ms

      Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, config_.target,
                                     Poco::Net::HTTPMessage::HTTP_1_1);
      request.set("Host", config_.host_header);
      request.setKeepAlive(true);
      request.setContentType("application/json");
      request.setContentLength(static_cast<std::streamsize>(body_.size()));
      request.set("apikey", config_.api_key);
      request.set("Authorization", config_.authorization);
      request.set("Prefer", "return=minimal, resolution=ignore-duplicates");
      request.set("User-Agent", "wep-supabase-transport/1");
      std::ostream& out = connection_.session->sendRequest(request);
      out.write(body_.data(), static_cast<std::streamsize>(body_.size()));
      out.flush();
      if (!out) throw Poco::Net::NetException("writing the request failed");

      Poco::Net::HTTPResponse response;
      std::istream& in = connection_.session->receiveResponse(response);
      std::string response_body;
      size_t drained = 0;
      char chunk[4096];
      bool reusable = response.getKeepAlive();
      while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
        const auto n = static_cast<size_t>(in.gcount());
        if (response_body.size() < 64 * 1024) response_body.append(chunk, n);
        drained += n;
        if (drained > kMaxDrainBytes) {
          reusable = false;
          break;
        }
      }
      if (in.bad()) reusable = false;
      connection_.last_used = std::chrono::steady_clock::now();
      disarm_deadline();
      if (!reusable) drop_connection(false);
      apply_status(response, response_body, verdict);
    } catch (const Cancelled&) {
      drop_connection(false);
      verdict.retry_later("cancelled");
    } catch (const Poco::TimeoutException&) {
      drop_connection(false);
      verdict.retry_later(was_cancelled() ? "cancelled" : "no answer from " + config_.host + " within " + timeout_text);
    } catch (const Poco::Exception& e) {
      drop_connection(false);
      if (was_cancelled()) {
        verdict.retry_later("cancelled");
      } else if (deadline_passed()) {
        verdict.retry_later("no answer from " + config_.host + " within " + timeout_text);
      } else if (is_certificate_error(e)) {
        const std::string why = "TLS certificate of " + config_.host + " refused: " + e.displayText() +
                                " (check the url, or ca_file for a private CA)";
        host_.log(WEP_LOG_WARN, "supabase transport: " + why);
        verdict.failed(why);
      } else {
        verdict.retry_later("connection to " + config_.host + ":" + std::to_string(config_.port) +
                            " failed: " + e.displayText());
      }
    } catch (const std::exception& e) {
      drop_connection(false);
      verdict.retry_later(was_cancelled() ? "cancelled" : std::string("request failed: ") + e.what());
    }
    disarm_deadline();
  }

  // ---- the deadline watchdog. Socket timeouts bound each single wait, but
  // Poco may wait more than once in a phase (the TLS handshake waits in a
  // read and then in a poll). The watchdog bounds each whole phase --
  // connection set-up, then the exchange -- by timeout_ms, shutting the
  // socket down as cancel() does (name resolution watches the same flag, see
  // resolve()).

  // Wakes the watchdog only when it would otherwise sleep past the new
  // deadline: while requests follow each other it sleeps until an earlier
  // deadline, then re-checks and sleeps on, so a request costs it no wake-up.
  void arm_deadline() {
    bool wake_watchdog = false;
    {
      std::lock_guard lock(cancel_mutex_);
      deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.timeout_ms);
      deadline_passed_ = false;
      wake_watchdog = !watchdog_sleeps_until_ || *watchdog_sleeps_until_ > *deadline_;
    }
    if (wake_watchdog) watchdog_wakeup_.notify_one();
  }

  void disarm_deadline() {
    std::lock_guard lock(cancel_mutex_);
    deadline_.reset();
  }

  bool deadline_passed() {
    std::lock_guard lock(cancel_mutex_);
    return deadline_passed_;
  }

  void watch_deadlines() {
    std::unique_lock lock(cancel_mutex_);
    while (!watchdog_stopping_) {
      if (!deadline_) {
        watchdog_sleeps_until_.reset();
        watchdog_wakeup_.wait(lock);
        continue;
      }
      const auto deadline = *deadline_;
      if (std::chrono::steady_clock::now() < deadline) {
        watchdog_sleeps_until_ = deadline;
        watchdog_wakeup_.wait_until(lock, deadline);
        continue;  // re-check: the deadline may have moved or been disarmed
      }
      watchdog_sleeps_until_.reset();
      deadline_.reset();
      deadline_passed_ = true;
      if (cancel_fd_ >= 0) ::shutdown(cancel_fd_, SHUT_RDWR);
    }
  }

  void stop_watchdog() noexcept {
    {
      std::lock_guard lock(cancel_mutex_);
      watchdog_stopping_ = true;
    }
    watchdog_wakeup_.notify_one();
    if (watchdog_.joinable()) watchdog_.join();
  }

  bool was_cancelled() {
    std::lock_guard lock(cancel_mutex_);
    return cancel_requested_;
  }

  void apply_status(const Poco::Net::HTTPResponse& response, const std::string& body, wep::Verdict& verdict) {
    const int status = status_code_of(response);
    verdict.set_http_status(status);
    const std::string answered = "HTTP " + std::to_string(status) + " from " + config_.display_url + ": ";
    if (status >= 200 && status < 300) {
      verdict.delivered();
    } else if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
      std::optional<int64_t> retry_after_ms;
      if (response.has("Retry-After")) retry_after_ms = parse_retry_after_ms(response.get("Retry-After"));
      verdict.retry_later(answered + excerpt(body), retry_after_ms.value_or(-1));
    } else if (status == 413) {
      verdict.too_large(answered + "batch too large");
    } else if (status == 400 || status == 409) {
      verdict.rejected_all(answered + "rows refused: " + excerpt(body));
    } else if (status == 401) {
      verdict.failed(answered + "authentication refused: check api_key (the project's anon key): " + excerpt(body));
    } else if (status == 403) {
      verdict.failed(answered + "permission denied: the anon role may not insert into '" + config_.table +
                     "' (check the grants and the row-level security policy): " + excerpt(body));
    } else if (status == 404) {
      verdict.failed(answered + "table '" + config_.table + "' not found (check table and url): " + excerpt(body));
    } else {
      verdict.failed(answered + "unexpected answer: " + excerpt(body));
    }
  }

  wep::Host host_;
  Config config_;
  bool started_ = false;
  Poco::Net::Context::Ptr context_;
  wep::transport::RowEncoder encoder_;
  std::string body_;       // reused request body buffer
  Connection connection_;  // used by the sending thread only

  // Guards the hand-over with cancel() (from any thread) and the watchdog.
  std::mutex cancel_mutex_;
  bool in_flight_ = false;
  bool cancel_requested_ = false;
  int cancel_fd_ = -1;                                             // a duplicate of the connection's socket, owned here
  std::optional<std::chrono::steady_clock::time_point> deadline_;  // of the current phase
  bool deadline_passed_ = false;
  // When the watchdog wakes by itself; empty while it waits for a notify.
  std::optional<std::chrono::steady_clock::time_point> watchdog_sleeps_until_;
  bool watchdog_stopping_ = false;
  std::condition_variable watchdog_wakeup_;
  std::thread watchdog_;  // started by start(), joined by stop() or the destructor
};

}  // namespace

WEP_TRANSPORT_PLUGIN("supabase", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<SupabaseTransport>(host);
})
