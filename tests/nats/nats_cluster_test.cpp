// The nats transport against a real 3-node JetStream cluster (nats-server
// processes on 127.0.0.1, file storage in a temporary folder, a stream with 3
// replicas), started and stopped by each test: end to end through the host
// stub, the analytics plugin and its flusher, and the transport on its own.
#define BOOST_TEST_MODULE nats_cluster
#include <rapidjson/document.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <string>

#include "delivery_support.hpp"
#include "nats_test_support.hpp"

using namespace std::chrono_literals;
using wep::test::AnalyticsOptions;
using wep::test::DirectTransport;
using wep::test::eventually;
using wep::test::host_options;
using wep::test::nats_config_json;
using wep::test::payload;
using wep::test::Rows;
using wep::test::stat;
using wep::test::stat_text;
using wep::test::TempDir;

namespace {

const std::string kStream = "EVENTS";
const std::string kSubject = "events.app";

struct Cluster {
  TempDir dir;
  std::unique_ptr<wep::nats_cluster::NatsCluster> nats;

  // extra_server_config: server config lines for every node (e.g. max_payload).
  explicit Cluster(std::chrono::milliseconds duplicate_window = 120s, const std::string& extra_server_config = "") {
    std::filesystem::create_directories(dir.path() / "cluster");
    wep::nats_cluster::ClusterOptions options;
    options.dir = dir.path() / "cluster";
    options.extra_config = extra_server_config;
    nats = std::make_unique<wep::nats_cluster::NatsCluster>(options);
    wep::nats_cluster::StreamOptions stream;
    stream.name = kStream;
    stream.subjects = {"events.>"};
    stream.replicas = 3;
    stream.duplicate_window = duplicate_window;
    nats->create_stream(stream);
  }
  std::string transport_config(const std::string& extra = "\"timeout_ms\": 2000") const {
    return nats_config_json(nats->urls(), kSubject, "\"stream\": \"" + kStream + "\", " + extra);
  }
  AnalyticsOptions analytics(uint32_t batch_size = 100) const {
    AnalyticsOptions options;
    options.transport_plugin = WEP_NATS_PATH;
    options.transport_config_json = transport_config();
    options.batch_size = batch_size;
    options.backoff_initial_ms = 50;
    options.backoff_max_ms = 1000;
    options.transport_stop_timeout_ms = 5000;
    return options;
  }
  std::filesystem::path host_dir() const { return dir.path() / "host"; }
};

void mutate_notes(wep::host_stub::Host& host, int64_t first_n, int64_t count) {
  for (int64_t n = first_n; n < first_n + count; ++n) host.mutate("note.created", payload(n));
}

void require_exactly_once(wep::nats_cluster::NatsCluster& nats, int64_t expected) {
  const wep::nats_cluster::StreamContents contents = nats.read_stream(kStream);
  BOOST_TEST(contents.messages == expected);
  BOOST_TEST(static_cast<int64_t>(contents.distinct_ids.size()) == expected);
  BOOST_TEST(contents.messages_without_id == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_row_reaches_the_stream_exactly_once_as_the_supabase_row) {
  Cluster cluster;
  wep::host_stub::Host host(host_options(cluster.host_dir(), WEP_ANALYTICS_PATH, cluster.analytics()));
  mutate_notes(host, 1, 1000);
  host.set_online(true);
  BOOST_TEST_REQUIRE(host.wait_delivered(60s).value_or(-1) == 0);
  BOOST_TEST(stat(host, "delivered") == 1000);
  // The stream's 120 s window is far above backoff.max_ms + timeout_ms: no warning.
  BOOST_TEST(stat_text(host, "last_error").find("backoff.max_ms") == std::string::npos);

  const wep::nats_cluster::StreamContents contents = cluster.nats->read_stream(kStream, true);
  BOOST_TEST(contents.messages == 1000);
  BOOST_TEST(contents.distinct_ids.size() == 1000u);
  BOOST_TEST_REQUIRE(!contents.bodies.empty());
  for (const std::string& body : {contents.bodies.front(), contents.bodies.back()}) {
    rapidjson::Document row;
    BOOST_TEST_REQUIRE(!row.Parse(body.c_str()).HasParseError(), body);
    BOOST_TEST_REQUIRE(row.IsObject());
    BOOST_TEST(row.MemberCount() == 5u);
    for (const char* key : {"event_id", "event_type", "properties", "user_id", "created_at"})
      BOOST_TEST(row.HasMember(key), key);
    BOOST_TEST(contents.distinct_ids.count(row["event_id"].GetString()) == 1u);  // the header is the event id
    BOOST_TEST(std::string(row["event_type"].GetString()) == "note_created");
  }
}

BOOST_AUTO_TEST_CASE(a_resent_batch_is_acknowledged_as_duplicate_and_not_stored_again) {
  Cluster cluster;
  TempDir data;
  DirectTransport transport(cluster.transport_config(), data.path().string());
  BOOST_TEST_REQUIRE(transport.start() == "");
  BOOST_TEST(transport.logged("duplicate window 120000 ms"));
  BOOST_TEST(transport.resend_window_ms().value_or(-1) == 120000 - 2000);

  Rows rows;
  rows.add_range(1, 50);
  const auto first = transport.send(rows);
  BOOST_TEST(first.kind == WEP_VERDICT_DELIVERED, first.reason);
  BOOST_TEST(!transport.logged("acknowledged as duplicates"));
  const auto again = transport.send(rows);
  BOOST_TEST(again.kind == WEP_VERDICT_DELIVERED, again.reason);
  BOOST_TEST(transport.logged("50 of 50 message(s) acknowledged as duplicates"));
  require_exactly_once(*cluster.nats, 50);
}

BOOST_AUTO_TEST_CASE(a_stream_that_does_not_exist_is_refused_at_start_naming_the_key) {
  Cluster cluster;
  TempDir data;
  DirectTransport transport(nats_config_json(cluster.nats->urls(), kSubject, R"("stream": "MISSING")"),
                            data.path().string());
  const std::string error = transport.start();
  BOOST_TEST(error.find("key 'stream'") != std::string::npos, error);
  BOOST_TEST(error.find("MISSING") != std::string::npos, error);
}

// The shared row encoder refuses properties over wep::transport::kMaxPropertiesBytes
// (the server schema's bound) before the server's max_payload is reached.
BOOST_AUTO_TEST_CASE(an_oversized_row_is_refused_for_good_and_the_others_delivered) {
  Cluster cluster;
  TempDir data;
  DirectTransport transport(cluster.transport_config(), data.path().string());
  BOOST_TEST_REQUIRE(transport.start() == "");
  const std::string huge = "{\"blob\":\"" + std::string(1100 * 1024, 'x') + "\"}";  // over the 1 MiB default
  Rows rows;
  rows.add(1).add(2, "note_created", huge).add(3);
  const auto verdict = transport.send(rows);
  BOOST_TEST_REQUIRE(verdict.kind == WEP_VERDICT_PER_ROW, verdict.reason);
  BOOST_TEST(verdict.flags == (std::vector<uint8_t>{WEP_ROW_DELIVERED, WEP_ROW_REJECTED, WEP_ROW_DELIVERED}),
             boost::test_tools::per_element());
  BOOST_TEST(verdict.reason.find("properties larger than") != std::string::npos, verdict.reason);

  // A caller of API 1.1 gets REJECTED flagging that row only.
  Rows old_rows;
  old_rows.add(4).add(5, "note_created", huge).add(6);
  const auto old_verdict = transport.send(old_rows, false);
  BOOST_TEST(old_verdict.kind == WEP_VERDICT_REJECTED, old_verdict.reason);
  BOOST_TEST(old_verdict.flags == (std::vector<uint8_t>{0, 1, 0}), boost::test_tools::per_element());
  require_exactly_once(*cluster.nats, 4);
}

// Servers configured with a small max_payload: a row the shared encoder
// accepts (its properties are under the schema's bound) but that is larger
// than the servers take is refused for good by the transport itself, naming
// max_payload, and the rows beside it are delivered.
BOOST_AUTO_TEST_CASE(a_row_over_the_servers_max_payload_is_refused_and_the_others_delivered) {
  Cluster cluster(120s, "max_payload: 4096");
  TempDir data;
  DirectTransport transport(cluster.transport_config(), data.path().string());
  BOOST_TEST_REQUIRE(transport.start() == "");
  const std::string large = "{\"blob\":\"" + std::string(8 * 1024, 'x') + "\"}";  // under the encoder's 12 KiB
  Rows rows;
  rows.add(1).add(2, "note_created", large).add(3);
  const auto verdict = transport.send(rows);
  BOOST_TEST_REQUIRE(verdict.kind == WEP_VERDICT_PER_ROW, verdict.reason);
  BOOST_TEST(verdict.flags == (std::vector<uint8_t>{WEP_ROW_DELIVERED, WEP_ROW_REJECTED, WEP_ROW_DELIVERED}),
             boost::test_tools::per_element());
  BOOST_TEST(verdict.reason.find("at most 4096 (max_payload)") != std::string::npos, verdict.reason);
  require_exactly_once(*cluster.nats, 2);
}

BOOST_AUTO_TEST_CASE(a_duplicate_window_shorter_than_the_retry_horizon_is_reported) {
  Cluster cluster(1000ms);
  TempDir data;
  DirectTransport transport(cluster.transport_config("\"timeout_ms\": 400"), data.path().string());
  BOOST_TEST_REQUIRE(transport.start() == "");
  BOOST_TEST(transport.resend_window_ms().value_or(-1) == 600);  // 1000 ms window less the 400 ms timeout

  AnalyticsOptions options = cluster.analytics();
  options.transport_config_json = cluster.transport_config("\"timeout_ms\": 400");
  options.backoff_max_ms = 5000;
  wep::host_stub::Host host(host_options(cluster.host_dir(), WEP_ANALYTICS_PATH, options));
  const std::string warning = stat_text(host, "last_error");
  BOOST_TEST(warning.find("600 ms") != std::string::npos, warning);
  BOOST_TEST(warning.find("backoff.max_ms (5000 ms)") != std::string::npos, warning);
}

BOOST_AUTO_TEST_CASE(killing_the_stream_leader_during_delivery_keeps_every_row_exactly_once) {
  Cluster cluster;
  constexpr int64_t kEvents = 30000;
  wep::host_stub::Host host(host_options(cluster.host_dir(), WEP_ANALYTICS_PATH, cluster.analytics(200)));
  mutate_notes(host, 1, kEvents);
  const int leader = cluster.nats->stream_leader(kStream);
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "delivered") >= 2000; }, 60s));
  cluster.nats->kill_node(leader);  // kill -9
  const int64_t pending_at_kill = host.pending().value_or(-1);
  BOOST_TEST(pending_at_kill > 0);  // the kill landed during delivery

  // An election takes 4-9 s; then every row goes through.
  BOOST_TEST_REQUIRE(host.wait_delivered(180s).value_or(-1) == 0);
  BOOST_TEST(stat(host, "delivered") == kEvents);
  BOOST_TEST(cluster.nats->stream_leader(kStream) != leader);
  cluster.nats->restart_node(leader);
  require_exactly_once(*cluster.nats, kEvents);
}

BOOST_AUTO_TEST_CASE(the_whole_cluster_down_and_back_loses_nothing) {
  Cluster cluster;
  wep::host_stub::Host host(host_options(cluster.host_dir(), WEP_ANALYTICS_PATH, cluster.analytics()));
  host.set_online(true);
  mutate_notes(host, 1, 300);
  BOOST_TEST_REQUIRE(host.wait_delivered(60s).value_or(-1) == 0);

  cluster.nats->stop_all();
  const int64_t retries_before = stat(host, "retries");
  mutate_notes(host, 301, 300);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "retries") > retries_before; }, 60s));
  BOOST_TEST(host.pending().value_or(-1) == 300);  // kept while the cluster is down

  cluster.nats->restart_all();
  BOOST_TEST_REQUIRE(host.wait_delivered(120s).value_or(-1) == 0);
  BOOST_TEST(stat(host, "delivered") == 600);
  require_exactly_once(*cluster.nats, 600);
}
