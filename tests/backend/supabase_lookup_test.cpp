// The supabase transport's host name lookup when the name server never
// answers: bounded by timeout_ms, and ended by cancel().
//
// To make "never answers" real and deterministic, this suite runs in a
// private network and mount namespace (set up before any thread starts; it
// needs root, as CI and the developer machines have): only the loopback
// interface exists, /etc/resolv.conf is replaced (for this process only) by
// one naming 127.0.0.1, and a UDP socket on 127.0.0.1:53 reads the queries
// and answers none. glibc's resolver is the real one, going through
// nsswitch and resolv.conf as on any machine.
#define BOOST_TEST_MODULE supabase_lookup
#include <Poco/Net/DatagramSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Timespan.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "transport_test_support.hpp"

using namespace std::chrono_literals;
using wep::test::LoadedTransport;
using wep::test::Rows;
using wep::test::TempDir;

namespace {

// Names not in /etc/hosts: the lookup goes to the name server. One per test,
// so a late query from an earlier test's abandoned lookup is not mistaken
// for this test's.
constexpr const char* kTimeoutName = "timeout-case.unanswered.test";
constexpr const char* kCancelName = "cancel-case.unanswered.test";

[[noreturn]] void fail_setup(const std::string& what) {
  throw std::runtime_error("supabase_lookup_test set-up: " + what + ": " + std::strerror(errno) +
                           " (this suite needs root for a private network namespace)");
}

// The namespaces, the replaced resolv.conf and the silent name server.
// Created once, before any test (and any thread) runs.
struct SilentNameServer {
  TempDir dir{"wep-lookup"};
  std::unique_ptr<Poco::Net::DatagramSocket> socket;

  SilentNameServer() {
    if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) fail_setup("unshare");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail_setup("making / private");
    bring_loopback_up();
    const std::filesystem::path resolv = dir.path() / "resolv.conf";
    // 20 s per try: far beyond every bound below, so only timeout_ms or
    // cancel() can end a send within them.
    std::ofstream(resolv) << "nameserver 127.0.0.1\noptions timeout:20 attempts:1\n";
    if (::mount(resolv.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
      fail_setup("bind-mounting resolv.conf");
    }
    socket = std::make_unique<Poco::Net::DatagramSocket>(Poco::Net::SocketAddress("127.0.0.1", 53), true);
  }

  static void bring_loopback_up() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_setup("socket");
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFFLAGS, &request) != 0) fail_setup("reading lo's flags");
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(fd, SIOCSIFFLAGS, &request) != 0) fail_setup("bringing lo up");
    ::close(fd);
  }

  // Waits for a query for `name` (its first label, as it appears in the
  // query packet) and reads it; none is ever answered. False at the timeout.
  bool wait_for_query(const std::string& name, std::chrono::seconds timeout) {
    const std::string label = name.substr(0, name.find('.'));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      if (!socket->poll(Poco::Timespan(left.count()), Poco::Net::Socket::SELECT_READ)) continue;
      char packet[1500];
      Poco::Net::SocketAddress sender;
      const int size = socket->receiveFrom(packet, sizeof packet, sender);
      if (size > 0 && std::string(packet, static_cast<size_t>(size)).find(label) != std::string::npos) return true;
    }
  }
};

SilentNameServer* name_server = nullptr;

struct NamespaceFixture {
  NamespaceFixture() { name_server = new SilentNameServer(); }
  ~NamespaceFixture() {
    delete name_server;
    name_server = nullptr;
  }
};
BOOST_TEST_GLOBAL_FIXTURE(NamespaceFixture);

std::string config(const std::string& name, uint32_t timeout_ms) {
  return "{\"url\":\"https://" + name + "\",\"api_key\":\"k\",\"timeout_ms\":" + std::to_string(timeout_ms) + "}";
}

int64_t ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer builds of the transport look names up blocking (see
// SupabaseTransport::resolve): neither claim below holds there by design.
BOOST_AUTO_TEST_CASE(lookups_are_not_bounded_in_thread_sanitizer_builds) {
  BOOST_TEST_MESSAGE("ThreadSanitizer build: the bounded lookup is compiled out; nothing to test here");
}
#else

BOOST_AUTO_TEST_CASE(a_lookup_that_is_never_answered_is_bounded_by_the_timeout) {
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(kTimeoutName, 500), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  std::atomic<bool> queried{false};
  std::thread listener([&] { queried = name_server->wait_for_query(kTimeoutName, 20s); });
  const auto started = std::chrono::steady_clock::now();
  const auto outcome = transport.send(rows);
  const int64_t took = ms_since(started);
  listener.join();
  BOOST_TEST(queried.load(), "no query reached the name server: the lookup did not go out");
  BOOST_TEST(outcome.kind == WEP_VERDICT_RETRY_LATER, wep::test::verdict_name(outcome.kind) << ": " << outcome.reason);
  BOOST_TEST(outcome.reason.find(kTimeoutName) != std::string::npos, outcome.reason);
  BOOST_TEST_MESSAGE("a lookup never answered, timeout_ms 500: send returned after " << took << " ms ("
                                                                                     << outcome.reason << ")");
  BOOST_TEST(took >= 450);  // not before the timeout
  BOOST_TEST(took < 5000);  // generous; the resolver alone would wait 20 s
}

BOOST_AUTO_TEST_CASE(cancel_ends_a_send_stuck_in_the_lookup) {
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(kCancelName, 30000),
                            dir.str());  // 30 s: only cancel() ends it sooner
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  std::atomic<int64_t> cancelled_after_ms{-1};
  const auto started = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    // The gate: the query is at the name server, so the send is in the lookup.
    if (name_server->wait_for_query(kCancelName, 20s)) cancelled_after_ms = ms_since(started);
    transport.cancel();
  });
  const auto outcome = transport.send(rows);
  const int64_t took = ms_since(started);
  canceller.join();
  BOOST_TEST_REQUIRE(cancelled_after_ms.load() >= 0, "no query reached the name server");
  BOOST_TEST(outcome.kind == WEP_VERDICT_RETRY_LATER, wep::test::verdict_name(outcome.kind) << ": " << outcome.reason);
  BOOST_TEST(outcome.reason.find("cancelled") != std::string::npos, outcome.reason);
  BOOST_TEST_MESSAGE("cancelled " << cancelled_after_ms.load() << " ms into the lookup; send returned after " << took
                                  << " ms");
  BOOST_TEST(took - cancelled_after_ms.load() < 3000);  // generous; the resolver alone would wait 20 s
}

#endif
