#include "http_connection.hpp"

#include <Poco/Crypto/OpenSSLInitializer.h>
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
#include <fcntl.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <wep/plugin.hpp>
#include <wep/support/sigpipe_guard.hpp>

namespace wep::supabase {
namespace {

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

using Clock = std::chrono::steady_clock;

// A kept-alive connection idle longer than this is replaced rather than
// reused: servers close idle connections and a request racing that close
// would fail for nothing.
constexpr auto kMaxIdleBeforeReconnect = std::chrono::seconds(20);
// Response bodies longer than this are not drained; the connection is dropped.
constexpr size_t kMaxDrainBytes = 1 << 20;
// How much of a response body is kept for the caller.
constexpr size_t kMaxKeptBodyBytes = 64 * 1024;

struct Cancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

bool is_certificate_error(const Poco::Exception& e) {
  if (dynamic_cast<const Poco::Net::CertificateValidationException*>(&e)) return true;
  const std::string text = Poco::toLower(e.displayText());
  return text.find("certificate verify failed") != std::string::npos ||
         text.find("unacceptable certificate") != std::string::npos;
}

[[noreturn]] void refuse(const std::string& what) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "supabase config: " + what);
}

}  // namespace

struct HttpConnection::Impl {
  explicit Impl(HttpEndpoint endpoint_in) : endpoint(std::move(endpoint_in)) {}

  const HttpEndpoint endpoint;
  Poco::Net::Context::Ptr context;

  // ---- the connection, used by the posting thread only
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  std::optional<Poco::Net::SecureStreamSocket> tls_socket;  // to abort without a TLS shutdown
  Clock::time_point last_used;

  // ---- guarded by `mutex`: the hand-over with cancel() (from any thread)
  // and the watchdog
  std::mutex mutex;
  bool in_flight = false;
  bool cancel_requested = false;
  int cancel_fd = -1;                         // a duplicate of the connection's socket, owned here
  std::optional<Clock::time_point> deadline;  // of the current phase
  bool deadline_passed = false;
  // When the watchdog wakes by itself; empty while it waits for a notify.
  std::optional<Clock::time_point> watchdog_sleeps_until;
  bool watchdog_stopping = false;
  std::condition_variable watchdog_wakeup;
  std::thread watchdog;

  void make_context();
  HttpAnswer post(const std::string& target, const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& body);
  bool connection_is_stale();
  void connect();
  Poco::Net::SocketAddress resolve();
  void drop_connection(bool orderly) noexcept;
  void arm_deadline();
  void disarm_deadline();
  bool was_cancelled();
  bool has_deadline_passed();
  void watch_deadlines();
  void stop_watchdog() noexcept;
};

HttpConnection::HttpConnection(HttpEndpoint endpoint) : impl_(std::make_unique<Impl>(std::move(endpoint))) {
  Poco::Crypto::OpenSSLInitializer::initialize();
  try {
    if (impl_->endpoint.https) impl_->make_context();
    impl_->watchdog = std::thread([impl = impl_.get()] { impl->watch_deadlines(); });
  } catch (...) {
    impl_->context.reset();
    Poco::Crypto::OpenSSLInitializer::uninitialize();
    throw;
  }
}

HttpConnection::~HttpConnection() {
  impl_->stop_watchdog();
  impl_->drop_connection(false);
  impl_->context.reset();
  Poco::Crypto::OpenSSLInitializer::uninitialize();
}

HttpAnswer HttpConnection::post(const std::string& target,
                                const std::vector<std::pair<std::string, std::string>>& headers,
                                const std::string& body) {
  wep::transport::SigpipeGuard sigpipe_guard;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->in_flight = true;
    impl_->cancel_requested = false;
  }
  HttpAnswer answer = impl_->post(target, headers, body);
  bool cancelled = false;
  {
    std::lock_guard lock(impl_->mutex);
    cancelled = impl_->cancel_requested;
    impl_->in_flight = false;
    impl_->cancel_requested = false;
  }
  if (cancelled) impl_->drop_connection(false);  // its socket may have been shut down
  return answer;
}

void HttpConnection::cancel() noexcept {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->in_flight) return;
  impl_->cancel_requested = true;
  if (impl_->cancel_fd >= 0) ::shutdown(impl_->cancel_fd, SHUT_RDWR);  // wakes a blocked connect/read/write
}

void HttpConnection::close() noexcept {
  wep::transport::SigpipeGuard sigpipe_guard;
  impl_->drop_connection(true);
}

void HttpConnection::Impl::make_context() {
  Poco::Net::Context::Params params;
  params.verificationMode = Poco::Net::Context::VERIFY_STRICT;  // STRICT: Poco checks the name even for localhost
  params.verificationDepth = 9;
  params.caLocation = endpoint.ca_file;
  params.loadDefaultCAs = endpoint.ca_file.empty();
  try {
    context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
    context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  } catch (const Poco::Exception& e) {
    refuse((endpoint.ca_file.empty() ? std::string("cannot set up TLS: ") : "key 'ca_file': cannot load CA file: ") +
           e.displayText());
  }
  SSL_CTX* ctx = context->sslContext();
  // OpenSSL's own verification decides; no SSLManager callback (see the header).
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  Poco::Net::IPAddress ip;
  const int ok = Poco::Net::IPAddress::tryParse(endpoint.host, ip)
                     ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint.host.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, endpoint.host.c_str(), endpoint.host.size());
  if (ok != 1) refuse("key 'url': cannot use host '" + endpoint.host + "' for certificate verification");
}

// True when the kept connection must not be reused.
bool HttpConnection::Impl::connection_is_stale() {
  if (!session || !session->connected()) return true;
  if (Clock::now() - last_used > kMaxIdleBeforeReconnect) return true;
  int fd = -1;
  {
    std::lock_guard lock(mutex);
    fd = cancel_fd;
  }
  if (fd < 0) return true;
  // An idle connection has nothing to read: readable means the peer closed
  // it (FIN, RST or a TLS close_notify).
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) != 0;
}

void HttpConnection::Impl::connect() {
  const Poco::Timespan timeout(static_cast<Poco::Timespan::TimeDiff>(endpoint.timeout_ms) * 1000);
  if (was_cancelled()) throw Cancelled();
  const Poco::Net::SocketAddress address = resolve();
  Poco::Net::StreamSocket tcp(address.family());
  const int duplicate = ::fcntl(tcp.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
  if (duplicate < 0) throw Poco::IOException("cannot duplicate a socket descriptor");
  {
    std::lock_guard lock(mutex);
    cancel_fd = duplicate;
    if (cancel_requested) throw Cancelled();
  }
  tcp.connect(address, timeout);
  tcp.setNoDelay(true);
  tcp.setReceiveTimeout(timeout);
  tcp.setSendTimeout(timeout);
  if (endpoint.https) {
    Poco::Net::SecureStreamSocket tls = Poco::Net::SecureStreamSocket::attach(tcp, endpoint.host, context);
    tls_socket = tls;
    // A plain HTTPClientSession over the TLS socket (all I/O goes through
    // the socket's virtual implementation). HTTPSClientSession's socket
    // constructor cannot take a connected socket in Poco 1.11 (it sets the
    // port afterwards and throws IllegalStateException).
    session = std::make_unique<Poco::Net::HTTPClientSession>(tls);
  } else {
    session = std::make_unique<Poco::Net::HTTPClientSession>(tcp);
  }
  session->setKeepAlive(true);
  session->setTimeout(timeout);
}

// The address of endpoint.host, looked up by glibc's asynchronous resolver so
// that the lookup is bounded like every other phase: it gives up when the
// phase deadline passes or cancel() is called (a blocking getaddrinfo() can
// take tens of seconds when the name servers do not answer, e.g. right after
// the device went offline). A lookup that cannot be cancelled is abandoned to
// glibc's own thread together with the small block it writes into, which is
// then deliberately never freed: that thread runs libc code only, so it is
// safe even after this plugin is unloaded. IP literals need no lookup.
Poco::Net::SocketAddress HttpConnection::Impl::resolve() {
  Poco::Net::IPAddress literal;
  if (Poco::Net::IPAddress::tryParse(endpoint.host, literal)) return Poco::Net::SocketAddress(literal, endpoint.port);
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer cannot follow the threads glibc starts for getaddrinfo_a
  // (they crash in its allocator), so TSan builds look names up blocking;
  // every other build runs the bounded lookup below.
  return Poco::Net::SocketAddress(endpoint.host, endpoint.port);
#endif

  struct Lookup {
    std::string name;
    std::string service;
    addrinfo hints{};
    gaicb request{};
  };
  auto lookup = std::make_unique<Lookup>();
  lookup->name = endpoint.host;
  lookup->service = std::to_string(endpoint.port);
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
    throw Poco::Net::HostNotFoundException(endpoint.host, std::string("cannot start the lookup: ") + gai_strerror(rc));
  }
  int status;
  while ((status = gai_error(&lookup->request)) == EAI_INPROGRESS) {
    if (was_cancelled() || has_deadline_passed()) {
      if (gai_cancel(&lookup->request) == EAI_NOTCANCELED) {
        (void)lookup.release();  // still in glibc's hands: abandoned, see above
      } else if (gai_error(&lookup->request) == 0 && lookup->request.ar_result) {
        freeaddrinfo(lookup->request.ar_result);  // finished meanwhile
      }
      if (was_cancelled()) throw Cancelled();
      throw Poco::TimeoutException("looking up " + endpoint.host);
    }
    const timespec slice{0, 20 * 1000 * 1000};  // checks cancel() and the deadline every 20 ms
    gai_suspend(requests, 1, &slice);
  }
  addrinfo* found = lookup->request.ar_result;
  if (status != 0 || !found) {
    if (found) freeaddrinfo(found);
    throw Poco::Net::HostNotFoundException(endpoint.host, status != 0 ? gai_strerror(status) : "no address");
  }
  const Poco::Net::SocketAddress address(found->ai_addr, static_cast<poco_socklen_t>(found->ai_addrlen));
  freeaddrinfo(found);
  return address;
}

// Closes the connection. `orderly`: with a TLS close_notify (only for a
// healthy connection); otherwise aborted at the TCP level.
void HttpConnection::Impl::drop_connection(bool orderly) noexcept {
  wep::transport::SigpipeGuard sigpipe_guard;
  int fd = -1;
  {
    std::lock_guard lock(mutex);
    fd = cancel_fd;
    cancel_fd = -1;
  }
  try {
    if (!orderly && tls_socket) tls_socket->abort();
  } catch (...) {
  }
  try {
    session.reset();
  } catch (...) {
  }
  try {
    tls_socket.reset();
  } catch (...) {
  }
  if (fd >= 0) ::close(fd);
}

HttpAnswer HttpConnection::Impl::post(const std::string& target,
                                      const std::vector<std::pair<std::string, std::string>>& headers,
                                      const std::string& body) {
  const std::string timeout_text = std::to_string(endpoint.timeout_ms) + " ms";
  HttpAnswer answer;
  auto fail = [&](HttpAnswer::Outcome outcome, std::string why) {
    drop_connection(false);
    answer.outcome = outcome;
    answer.error = std::move(why);
  };
  auto timed_out = [&] {
    fail(HttpAnswer::Outcome::kTimedOut, "no answer from " + endpoint.host + " within " + timeout_text);
  };
  try {
    if (session && connection_is_stale()) drop_connection(false);
    if (!session) {
      arm_deadline();  // connection set-up: at most timeout_ms
      connect();
    }
    arm_deadline();  // the exchange: at most timeout_ms

    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, target, Poco::Net::HTTPMessage::HTTP_1_1);
    request.setKeepAlive(true);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    std::ostream& out = session->sendRequest(request);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    if (!out) throw Poco::Net::NetException("writing the request failed");

    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    size_t drained = 0;
    char chunk[4096];
    bool reusable = response.getKeepAlive();
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
      const auto n = static_cast<size_t>(in.gcount());
      if (answer.body.size() < kMaxKeptBodyBytes) answer.body.append(chunk, n);
      drained += n;
      if (drained > kMaxDrainBytes) {
        reusable = false;
        break;
      }
    }
    if (in.bad()) reusable = false;
    last_used = Clock::now();
    disarm_deadline();
    if (!reusable) drop_connection(false);
    answer.outcome = HttpAnswer::Outcome::kAnswered;
    answer.status = status_code_of(response);
    if (response.has("Retry-After")) answer.retry_after = response.get("Retry-After");
  } catch (const Cancelled&) {
    fail(HttpAnswer::Outcome::kCancelled, "cancelled");
  } catch (const Poco::TimeoutException&) {
    if (was_cancelled()) {
      fail(HttpAnswer::Outcome::kCancelled, "cancelled");
    } else {
      timed_out();
    }
  } catch (const Poco::Exception& e) {
    if (was_cancelled()) {
      fail(HttpAnswer::Outcome::kCancelled, "cancelled");
    } else if (has_deadline_passed()) {
      timed_out();
    } else if (is_certificate_error(e)) {
      fail(HttpAnswer::Outcome::kCertificateRefused, "TLS certificate of " + endpoint.host +
                                                         " refused: " + e.displayText() +
                                                         " (check the url, or ca_file for a private CA)");
    } else {
      fail(HttpAnswer::Outcome::kNetworkError,
           "connection to " + endpoint.host + ":" + std::to_string(endpoint.port) + " failed: " + e.displayText());
    }
  } catch (const std::exception& e) {
    fail(was_cancelled() ? HttpAnswer::Outcome::kCancelled : HttpAnswer::Outcome::kNetworkError,
         was_cancelled() ? std::string("cancelled") : std::string("request failed: ") + e.what());
  }
  disarm_deadline();
  return answer;
}

// ---- the deadline watchdog. Socket timeouts bound each single wait, but
// Poco may wait more than once in a phase (the TLS handshake waits in a read
// and then in a poll). The watchdog bounds each whole phase -- connection
// set-up, then the exchange -- by timeout_ms, shutting the socket down as
// cancel() does (name resolution watches the same flag, see resolve()).

// Wakes the watchdog only when it would otherwise sleep past the new
// deadline: while requests follow each other it sleeps until an earlier
// deadline, then re-checks and sleeps on, so a request costs it no wake-up.
void HttpConnection::Impl::arm_deadline() {
  bool wake_watchdog = false;
  {
    std::lock_guard lock(mutex);
    deadline = Clock::now() + std::chrono::milliseconds(endpoint.timeout_ms);
    deadline_passed = false;
    wake_watchdog = !watchdog_sleeps_until || *watchdog_sleeps_until > *deadline;
  }
  if (wake_watchdog) watchdog_wakeup.notify_one();
}

void HttpConnection::Impl::disarm_deadline() {
  std::lock_guard lock(mutex);
  deadline.reset();
}

bool HttpConnection::Impl::has_deadline_passed() {
  std::lock_guard lock(mutex);
  return deadline_passed;
}

bool HttpConnection::Impl::was_cancelled() {
  std::lock_guard lock(mutex);
  return cancel_requested;
}

void HttpConnection::Impl::watch_deadlines() {
  std::unique_lock lock(mutex);
  while (!watchdog_stopping) {
    if (!deadline) {
      watchdog_sleeps_until.reset();
      watchdog_wakeup.wait(lock);
      continue;
    }
    const auto until = *deadline;
    if (Clock::now() < until) {
      watchdog_sleeps_until = until;
      watchdog_wakeup.wait_until(lock, until);
      continue;  // re-check: the deadline may have moved or been disarmed
    }
    watchdog_sleeps_until.reset();
    deadline.reset();
    deadline_passed = true;
    if (cancel_fd >= 0) ::shutdown(cancel_fd, SHUT_RDWR);
  }
}

void HttpConnection::Impl::stop_watchdog() noexcept {
  {
    std::lock_guard lock(mutex);
    watchdog_stopping = true;
  }
  watchdog_wakeup.notify_one();
  if (watchdog.joinable()) watchdog.join();
}

}  // namespace wep::supabase
