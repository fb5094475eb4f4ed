// The nats transport's config: refused at start naming the wrong key; and
// with no cluster to reach, start still succeeds and a send is RETRY_LATER
// within its timeout, with no secret in any log line or reason.
#define BOOST_TEST_MODULE nats_config
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <string>

#include "nats_test_support.hpp"

using namespace wep::test;

namespace {

// A loopback port nothing listens on (picked, then closed).
std::string dead_server() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return "nats://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
}

std::string refusal(const std::string& config_json) {
  TempDir dir;
  DirectTransport transport(config_json, dir.path().string());
  return transport.start();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_wrong_key_is_refused_by_name) {
  const std::string server = "\"servers\": [\"nats://127.0.0.1:1\"]";
  struct Case {
    std::string config;
    std::string key;
  };
  const std::vector<Case> cases = {
      {"{" + server + ", \"subject\": \"events.app\", \"bogus\": 1}", "bogus"},
      {"{" + server + "}", "subject"},
      {"{\"subject\": \"events.app\"}", "servers"},
      {"{\"servers\": [\"http://127.0.0.1:4222\"], \"subject\": \"events.app\"}", "servers"},
      {"{\"servers\": [], \"subject\": \"events.app\"}", "servers"},
      {"{" + server + ", \"subject\": \"events.*\"}", "subject"},
      {"{" + server + ", \"subject\": \"events.app\", \"timeout_ms\": \"5\"}", "timeout_ms"},
      {"{" + server + ", \"subject\": \"events.app\", \"timeout_ms\": 10}", "timeout_ms"},
      {"{" + server + ", \"subject\": \"events.app\", \"user\": \"u\"}", "password"},
      {"{" + server + ", \"subject\": \"events.app\", \"password\": \"p\"}", "user"},
      {"{" + server +
           ", \"subject\": \"events.app\", \"creds_file\": \"x.creds\", \"user\": \"u\", \"password\": \"p\"}",
       "creds_file"},
      {"{" + server + ", \"subject\": \"events.app\", \"creds_file\": \"missing.creds\"}", "creds_file"},
      {"{" + server + ", \"subject\": \"events.app\", \"nkey_seed_file\": \"seed.nk\"}", "nkey"},
      {"{" + server + ", \"subject\": \"events.app\", \"ca_file\": \"missing-ca.pem\"}", "ca_file"},
      {"{" + server + ", \"subject\": \"events.app\", \"tls_server_name\": \"localhost\"}", "tls_server_name"},
      {"{" + server + ", \"subject\": \"events.app\", \"inbox_prefix\": \"in box\"}", "inbox_prefix"},
      {"{" + server + ", \"subject\": \"events.app\", \"stream\": \"A.B\"}", "stream"},
  };
  for (const Case& c : cases) {
    const std::string error = refusal(c.config);
    BOOST_TEST_CONTEXT(c.config) {
      BOOST_TEST(error.find("nats config") != std::string::npos, error);
      BOOST_TEST(error.find(c.key) != std::string::npos, error);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_unreachable_cluster_is_retried_later_within_the_timeout_and_no_secret_is_logged) {
  TempDir dir;
  const std::string password = "s3cret-Pa55word";
  DirectTransport transport(
      nats_config_json({dead_server(), dead_server()}, "events.app",
                       "\"user\": \"publisher\", \"password\": \"" + password + "\", \"timeout_ms\": 1000"),
      dir.path().string());
  BOOST_TEST_REQUIRE(transport.start() == "");  // not reachable at start: not a config error
  BOOST_TEST(transport.logged("not reachable at start"));
  BOOST_TEST(!transport.resend_window_ms().has_value());

  Rows rows;
  rows.add_range(1, 5);
  const auto started = std::chrono::steady_clock::now();
  const Verdict verdict = transport.send(rows);
  BOOST_TEST((std::chrono::steady_clock::now() - started < std::chrono::seconds(5)));
  BOOST_TEST(verdict.kind == WEP_VERDICT_RETRY_LATER, verdict.reason);
  BOOST_TEST(verdict.reason.find(password) == std::string::npos);
  for (const std::string& line : transport.logs()) BOOST_TEST(line.find(password) == std::string::npos, line);
  BOOST_TEST(transport.logged("user/password (user publisher)"));
}
