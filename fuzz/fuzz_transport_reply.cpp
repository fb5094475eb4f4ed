// libFuzzer target: the transports' reply parsing. The real supabase plugin
// (dlopen'ed, as a flusher loads it) sends a one-row batch over plain HTTP to
// a loopback server thread that reads the request and answers with the
// fuzzer's bytes verbatim (status line, headers such as Retry-After and
// Content-Length or chunked encoding, error body), then closes. Every answer
// must end in a verdict the API defines; nothing may crash or hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "transport_test_support.hpp"

namespace {

// The loopback server: one connection at a time, one reply per connection.
class ReplyServer {
 public:
  ReplyServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 16) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      std::abort();
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
    thread_.detach();  // lives as long as the fuzzing process
  }

  uint16_t port() const { return port_; }
  void set_reply(std::string reply) {
    std::lock_guard lock(mutex_);
    reply_ = std::move(reply);
  }

 private:
  void serve() {
    for (;;) {
      const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (connection < 0) continue;
      if (read_request(connection)) {
        std::string reply;
        {
          std::lock_guard lock(mutex_);
          reply = reply_;
        }
        for (size_t sent = 0; sent < reply.size();) {
          const ssize_t n = ::send(connection, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
          if (n <= 0) break;
          sent += static_cast<size_t>(n);
        }
      }
      ::shutdown(connection, SHUT_RDWR);
      ::close(connection);
    }
  }

  // Reads the request head and its Content-Length body.
  static bool read_request(int connection) {
    std::string request;
    char buffer[8192];
    size_t head_end = std::string::npos;
    size_t body_bytes = 0;
    for (;;) {
      if (head_end != std::string::npos && request.size() >= head_end + 4 + body_bytes) return true;
      const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      request.append(buffer, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = request.find("\r\n\r\n")) != std::string::npos) {
        for (const char* name : {"Content-Length: ", "content-length: "}) {
          const size_t at = request.find(name);
          if (at != std::string::npos && at < head_end)
            body_bytes = std::strtoul(request.c_str() + at + 16, nullptr, 10);
        }
      }
    }
  }

  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::string reply_;
};

struct Fixture {
  ReplyServer server;
  wep::test::TempDir data_dir;
  std::unique_ptr<wep::test::LoadedTransport> transport;

  Fixture() {
    transport =
        std::make_unique<wep::test::LoadedTransport>(WEP_SUPABASE_PATH,
                                                     "{\"url\":\"http://127.0.0.1:" + std::to_string(server.port()) +
                                                         "\",\"api_key\":\"fuzz-anon-key\",\"timeout_ms\":2000}",
                                                     data_dir.str());
    if (!transport->start().empty()) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  fixture.server.set_reply(std::string(reinterpret_cast<const char*>(data), size));
  wep::test::Rows rows;
  rows.add(1).add(2);
  const wep::test::Outcome outcome = fixture.transport->send(rows);
  switch (outcome.kind) {
    case WEP_VERDICT_DELIVERED:
    case WEP_VERDICT_RETRY_LATER:
    case WEP_VERDICT_REJECTED:
    case WEP_VERDICT_TOO_LARGE:
    case WEP_VERDICT_FAILED:
      break;
    default:
      std::abort();
  }
  if (outcome.retry_after_ms < -1) std::abort();
  return 0;
}
