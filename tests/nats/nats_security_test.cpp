// The nats transport against 3-node clusters that demand TLS (certificates
// of the test CA made at build time, tools/test_backend/make_test_certs.cmake)
// or authenticate users with per-user permissions.
#define BOOST_TEST_MODULE nats_security
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <string>

#include "nats_test_support.hpp"

using namespace wep::test;
using namespace std::chrono_literals;

namespace {

const std::string kCerts = WEP_TEST_CERTS_DIR;
const std::string kPublisherPassword = "pub-Secret-4711";

struct Cluster {
  TempDir dir;
  std::unique_ptr<wep::nats_cluster::NatsCluster> nats;

  explicit Cluster(wep::nats_cluster::ClusterOptions options, const std::string& subjects) {
    std::filesystem::create_directories(dir.path() / "cluster");
    options.dir = dir.path() / "cluster";
    nats = std::make_unique<wep::nats_cluster::NatsCluster>(options);
    wep::nats_cluster::StreamOptions stream;
    stream.name = "EVENTS";
    stream.subjects = {subjects};
    nats->create_stream(stream);
  }
};

wep::nats_cluster::ClusterOptions tls_options() {
  wep::nats_cluster::ClusterOptions options;
  options.tls_cert_file = kCerts + "/server.pem";  // SAN DNS:localhost, IP:127.0.0.1
  options.tls_key_file = kCerts + "/server.key";
  options.ca_file = kCerts + "/ca.pem";
  return options;
}

wep::nats_cluster::ClusterOptions users_options() {
  wep::nats_cluster::ClusterOptions options;
  options.admin_user = "admin";
  options.admin_password = "admin-pw";
  options.extra_config = R"(authorization {
  users = [
    {user: admin, password: admin-pw}
    {user: publisher, password: ")" +
                         kPublisherPassword +
                         R"(",
     permissions: {publish: {allow: ["orders.allowed"]}, subscribe: {allow: ["_INBOX_pub.>"]}}}
  ]
})";
  return options;
}

Rows some_rows(uint64_t first, size_t count) {
  Rows rows;
  rows.add_range(first, count);
  return rows;
}

void require_no_secret(const DirectTransport& transport, const Verdict& verdict) {
  BOOST_TEST(verdict.reason.find(kPublisherPassword) == std::string::npos);
  for (const std::string& line : transport.logs()) BOOST_TEST(line.find(kPublisherPassword) == std::string::npos);
}

}  // namespace

BOOST_AUTO_TEST_CASE(tls_with_the_test_ca_delivers_and_a_wrong_host_name_or_ca_is_refused) {
  Cluster cluster(tls_options(), "events.>");
  const std::string ca = "\"ca_file\": \"" + kCerts + "/ca.pem\", \"timeout_ms\": 2000";
  {
    TempDir data;
    DirectTransport transport(nats_config_json(cluster.nats->urls(), "events.app", ca + R"(, "stream": "EVENTS")"),
                              data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(1, 20);
    const auto verdict = transport.send(rows);
    BOOST_TEST(verdict.kind == WEP_VERDICT_DELIVERED, verdict.reason);
  }
  {
    TempDir data;  // the certificate is for localhost and 127.0.0.1 only
    DirectTransport transport(
        nats_config_json(cluster.nats->urls(), "events.app", ca + R"(, "tls_server_name": "other-host.invalid")"),
        data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(100, 5);
    const auto verdict = transport.send(rows);
    BOOST_TEST_MESSAGE("verdict reason: " << verdict.reason);
    BOOST_TEST(verdict.kind == WEP_VERDICT_FAILED, verdict.reason);  // not transient: retried slowly
    BOOST_TEST(verdict.reason.find("SSL") != std::string::npos, verdict.reason);
  }
  {
    TempDir data;
    DirectTransport transport(
        nats_config_json(cluster.nats->urls(), "events.app",
                         "\"ca_file\": \"" + kCerts + "/untrusted_ca.pem\", \"timeout_ms\": 2000"),
        data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(200, 5);
    const auto verdict = transport.send(rows);
    BOOST_TEST_MESSAGE("verdict reason: " << verdict.reason);
    BOOST_TEST(verdict.kind == WEP_VERDICT_FAILED, verdict.reason);
  }
  BOOST_TEST(cluster.nats->read_stream("EVENTS").distinct_ids.size() == 20u);
}

BOOST_AUTO_TEST_CASE(a_user_allowed_to_publish_on_one_subject_only_delivers_there_and_fails_elsewhere) {
  Cluster cluster(users_options(), "orders.>");
  const std::string auth =
      "\"user\": \"publisher\", \"password\": \"" + kPublisherPassword + "\", \"timeout_ms\": 2000";
  {
    TempDir data;
    DirectTransport transport(
        nats_config_json(cluster.nats->urls(), "orders.allowed", auth + R"(, "inbox_prefix": "_INBOX_pub")"),
        data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(1, 30);
    const auto verdict = transport.send(rows);
    BOOST_TEST(verdict.kind == WEP_VERDICT_DELIVERED, verdict.reason);
    require_no_secret(transport, verdict);
  }
  {
    TempDir data;  // a subject the user may not publish on: permanent, not retried fast
    DirectTransport transport(
        nats_config_json(cluster.nats->urls(), "orders.denied", auth + R"(, "inbox_prefix": "_INBOX_pub")"),
        data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(100, 5);
    const auto verdict = transport.send(rows);
    BOOST_TEST_MESSAGE("verdict reason: " << verdict.reason);
    BOOST_TEST(verdict.kind == WEP_VERDICT_FAILED, verdict.reason);
    BOOST_TEST(verdict.reason.find("ermission") != std::string::npos, verdict.reason);
    require_no_secret(transport, verdict);
  }
  {
    TempDir data;  // the default inbox: the acknowledgements cannot reach the user
    DirectTransport transport(nats_config_json(cluster.nats->urls(), "orders.allowed", auth), data.path().string());
    BOOST_TEST_REQUIRE(transport.start() == "");
    Rows rows = some_rows(200, 5);
    const auto verdict = transport.send(rows);
    BOOST_TEST_MESSAGE("verdict reason: " << verdict.reason);
    BOOST_TEST(verdict.kind == WEP_VERDICT_FAILED, verdict.reason);
    BOOST_TEST(verdict.reason.find("inbox_prefix") != std::string::npos, verdict.reason);
  }
  BOOST_TEST(cluster.nats->read_stream("EVENTS").messages >= 30);
}
