// The flusher's verdict handling, end to end: the real analytics plugin in the
// host stub (in-process), its flusher driving scripted_transport, a transport
// double whose verdicts are set by its config. Faults over real HTTPS are in
// supabase_delivery_test.cpp.
#define BOOST_TEST_MODULE delivery_flusher
#include <rapidjson/document.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "delivery_support.hpp"

using namespace wep::test;
using namespace std::chrono_literals;

namespace {

struct Delivered {
  std::string event_id;
  std::string event_type;
  int64_t n = -1;
};

// delivered.log lines: "<event_id> <event_type> <properties json>"
std::vector<Delivered> delivered_rows(const std::filesystem::path& data_dir) {
  std::vector<Delivered> out;
  for (const std::string& line : read_lines(transport_dir(data_dir) / "delivered.log")) {
    const size_t first = line.find(' ');
    const size_t second = line.find(' ', first + 1);
    Delivered row{line.substr(0, first), line.substr(first + 1, second - first - 1)};
    rapidjson::Document properties;
    const std::string json = line.substr(second + 1);
    if (!properties.Parse(json.c_str()).HasParseError() && properties.IsObject() && properties.HasMember("n") &&
        properties["n"].IsInt64()) {
      row.n = properties["n"].GetInt64();
    }
    out.push_back(row);
  }
  return out;
}

// .sends lines: "<rows> <verdict>"
std::vector<std::pair<size_t, std::string>> sends(const std::filesystem::path& data_dir) {
  std::vector<std::pair<size_t, std::string>> out;
  for (const std::string& line : read_lines(transport_dir(data_dir) / "delivered.log.sends")) {
    const size_t space = line.find(' ');
    out.emplace_back(std::stoul(line.substr(0, space)), line.substr(space + 1));
  }
  return out;
}

AnalyticsOptions scripted(const std::string& transport_config_json) {
  AnalyticsOptions options;
  options.transport_plugin = SCRIPTED_TRANSPORT_PATH;
  options.transport_config_json = transport_config_json;
  return options;
}

void mutate_notes(wep::host_stub::Host& host, int64_t first_n, int64_t count) {
  for (int64_t n = first_n; n < first_n + count; ++n) host.mutate("note.created", payload(n));
}

}  // namespace

BOOST_AUTO_TEST_CASE(delivers_every_row_once_in_batches_oldest_first) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted("{}")));
  mutate_notes(host, 1, 120);
  BOOST_TEST(host.pending().value_or(-1) == 120);

  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);

  const auto rows = delivered_rows(dir.path());
  BOOST_TEST_REQUIRE(rows.size() == 120u);
  std::set<std::string> ids;
  for (size_t i = 0; i < rows.size(); ++i) {
    BOOST_TEST(rows[i].n == static_cast<int64_t>(i + 1));  // oldest first
    BOOST_TEST(rows[i].event_type == "note_created");
    ids.insert(rows[i].event_id);
  }
  BOOST_TEST(ids.size() == 120u);
  // batch_size 50: two full batches, then the remainder.
  const auto all_sends = sends(dir.path());
  BOOST_TEST_REQUIRE(all_sends.size() == 3u);
  BOOST_TEST(all_sends[0].first == 50u);
  BOOST_TEST(all_sends[1].first == 50u);
  BOOST_TEST(all_sends[2].first == 20u);
  BOOST_TEST(stat(host, "delivered") == 120);
  BOOST_TEST(stat(host, "requests") == 3);
  BOOST_TEST(stat(host, "retries") == 0);
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 0);
}

BOOST_AUTO_TEST_CASE(rows_stored_while_online_are_sent_without_going_offline) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted("{}")));
  host.set_online(true);
  for (int round = 0; round < 5; ++round) {
    mutate_notes(host, round * 10 + 1, 10);
    BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  }
  BOOST_TEST(delivered_rows(dir.path()).size() == 50u);
  BOOST_TEST(stat(host, "delivered") == 50);
}

BOOST_AUTO_TEST_CASE(byte_cap_limits_each_request) {
  TempDir dir;
  AnalyticsOptions options = scripted("{}");
  options.batch_max_bytes = 1024;  // the minimum; a row counts ~210 bytes (its columns and its JSON on the wire)
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 60);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  const auto all_sends = sends(dir.path());
  BOOST_TEST(all_sends.size() >= 5u);  // batch_size 50 alone would need 2
  for (const auto& [rows, verdict] : all_sends) BOOST_TEST(rows <= 14u);
  BOOST_TEST(delivered_rows(dir.path()).size() == 60u);
}

BOOST_AUTO_TEST_CASE(batch_rejected_as_a_whole_is_split_to_dead_letter_the_poison_row) {
  TempDir dir;
  wep::host_stub::Host host(
      host_options(dir.path(), WEP_ANALYTICS_PATH, scripted(R"({"reject_event_types":["poison"]})")));
  mutate_notes(host, 1, 10);
  host.mutate("poison.made", payload(11));
  mutate_notes(host, 12, 10);
  // All stored before the first read: a refused row alone in a batch is a
  // systemic failure (kept), not a dead letter.
  BOOST_TEST_REQUIRE(host.pending().value_or(-1) == 21);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);

  const auto rows = delivered_rows(dir.path());
  BOOST_TEST(rows.size() == 20u);
  for (const auto& row : rows) BOOST_TEST(row.event_type == "note_created");
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].event_type == "poison");
  BOOST_TEST(dead[0].properties == R"({"n":11})");
  BOOST_TEST(dead[0].reason.find("400") != std::string::npos);
  BOOST_TEST(stat(host, "dead_lettered") == 1);
  BOOST_TEST(stat(host, "splits") >= 1);
  BOOST_TEST(stat(host, "delivered") == 20);
}

BOOST_AUTO_TEST_CASE(exactly_identified_rejections_are_dead_lettered_without_splitting) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH,
                                         scripted(R"({"reject_event_types":["poison"],"identify_rejected":true})")));
  host.mutate("poison.made", payload(1));
  mutate_notes(host, 2, 10);
  host.mutate("poison.made", payload(12));
  BOOST_TEST(host.pending().value_or(-1) == 12);  // all stored before the first read
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);

  BOOST_TEST(delivered_rows(dir.path()).size() == 10u);
  BOOST_TEST(dead_letters(analytics_db(dir.path())).size() == 2u);
  BOOST_TEST(stat(host, "splits") == 0);
  BOOST_TEST(stat(host, "dead_lettered") == 2);
  // One rejected request with 12 rows, then the 10 unflagged rows resent.
  const auto all_sends = sends(dir.path());
  BOOST_TEST_REQUIRE(all_sends.size() == 2u);
  BOOST_TEST(all_sends[0].first == 12u);
  BOOST_TEST(all_sends[0].second == "rejected");
  BOOST_TEST(all_sends[1].first == 10u);
  BOOST_TEST(all_sends[1].second == "delivered");
}

BOOST_AUTO_TEST_CASE(too_large_batches_are_split_until_they_fit) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted(R"({"max_rows":8})")));
  mutate_notes(host, 1, 30);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  const auto rows = delivered_rows(dir.path());
  BOOST_TEST_REQUIRE(rows.size() == 30u);
  for (size_t i = 0; i < rows.size(); ++i) BOOST_TEST(rows[i].n == static_cast<int64_t>(i + 1));
  for (const auto& [count, verdict] : sends(dir.path())) {
    if (verdict == "delivered") BOOST_TEST(count <= 8u);
  }
  BOOST_TEST(stat(host, "splits") >= 3);
  BOOST_TEST(stat(host, "dead_lettered") == 0);
}

BOOST_AUTO_TEST_CASE(a_single_row_too_large_is_dead_lettered) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted(R"({"max_properties_bytes":20})")));
  mutate_notes(host, 1, 5);
  host.mutate("note.created", payload(6, "abcdefghijklmnopqrstuvwxyz"));  // properties > 20 bytes
  mutate_notes(host, 7, 5);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  BOOST_TEST(delivered_rows(dir.path()).size() == 10u);
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].properties.find("\"n\":6") != std::string::npos);
  BOOST_TEST(dead[0].reason.find("too large") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(transient_failures_back_off_then_deliver) {
  TempDir dir;
  // The server asks for 400 ms three times; Retry-After is honoured within
  // [backoff.initial_ms, backoff.max_ms] (10..1000 here), and the flusher's
  // own draws in those three failures add up to at most 70 ms, so only an
  // honoured Retry-After takes 1.2 s.
  AnalyticsOptions options = scripted(R"({"fail_first":3,"fail_kind":"retry","retry_after_ms":400})");
  options.backoff_max_ms = 1000;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 10);
  const auto started = std::chrono::steady_clock::now();
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST(took >= 1150ms,
             "delivered after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(stat(host, "retries") == 3);
  BOOST_TEST(stat(host, "requests") == 4);
  BOOST_TEST(stat_text(host, "last_error").find("503") != std::string::npos);
  BOOST_TEST(delivered_rows(dir.path()).size() == 10u);
}

BOOST_AUTO_TEST_CASE(permanent_failure_keeps_every_row_reports_and_backs_off_at_the_maximum) {
  TempDir dir;
  AnalyticsOptions options = scripted(R"({"fail_first":1000000,"fail_kind":"failed"})");
  options.backoff_max_ms = 600000;  // far beyond this test: only the first request may go out
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 10);
  host.set_online(true);
  BOOST_TEST(eventually([&] { return stat(host, "retries") >= 1; }));
  BOOST_TEST(stat_text(host, "last_error").find("401") != std::string::npos);
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(stat(host, "requests") == 1);
  BOOST_TEST(stat(host, "dead_lettered") == 0);
  host.shutdown();  // must not wait for the backoff
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 10);
  BOOST_TEST(dead_letters(analytics_db(dir.path())).empty());
}

// Over several attempts, not only the first: each permanent failure waits
// the whole backoff_max_ms. An exponential backoff from 5 ms would make the
// first four requests within about 40 ms.
BOOST_AUTO_TEST_CASE(permanent_failures_keep_backing_off_at_the_maximum_over_time) {
  TempDir dir;
  AnalyticsOptions options = scripted(R"({"fail_first":1000000,"fail_kind":"failed"})");
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 400;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 10);
  const auto started = std::chrono::steady_clock::now();
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "requests") >= 4; }, 30s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  BOOST_TEST_MESSAGE("4 requests after " << took.count() << " ms");
  BOOST_TEST(took.count() >= 3 * 400, "3 waits of backoff_max_ms expected, 4 requests after " << took.count() << " ms");
  BOOST_TEST(took.count() < 20000);  // it keeps trying
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(stat(host, "delivered") == 0);
}

BOOST_AUTO_TEST_CASE(disabled_sends_nothing_keeps_rows_and_resumes_when_enabled) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted("{}")));
  mutate_notes(host, 1, 10);
  host.set_setting("analytics_enabled", "false");
  host.set_online(true);
  host.set_online(false);
  host.set_online(true);
  BOOST_TEST(host.pending().value_or(-1) == 10);  // a barrier: the plugin has seen every change above
  // The flusher thread has acted on the last change and parked: only a
  // change of connectivity or setting wakes it again.
  BOOST_TEST(eventually([&] { return stat_text(host, "flusher") == "paused"; }));
  BOOST_TEST(stat(host, "requests") == 0);
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 10);

  host.set_setting("analytics_enabled", "true");
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  BOOST_TEST(delivered_rows(dir.path()).size() == 10u);
}

BOOST_AUTO_TEST_CASE(going_offline_cancels_the_send_in_flight_and_keeps_rows) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted(R"({"block_until_cancel":true})")));
  mutate_notes(host, 1, 5);
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "requests") == 1; }));
  host.set_online(false);
  BOOST_TEST(eventually([&] {
    const auto all = sends(dir.path());
    return all.size() == 1 && all[0].second == "cancelled";
  }));
  BOOST_TEST(host.pending().value_or(-1) == 5);
  BOOST_TEST(stat(host, "delivered") == 0);
  BOOST_TEST(stat(host, "retries") == 0);  // a cancel is not a failure
}

BOOST_AUTO_TEST_CASE(stop_cancels_the_send_in_flight) {
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted(R"({"block_until_cancel":true})")));
  mutate_notes(host, 1, 5);
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "requests") == 1; }));
  host.shutdown();  // would block forever if stop() did not cancel the transport
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 5);
}

BOOST_AUTO_TEST_CASE(a_transport_that_cannot_be_loaded_refuses_the_start_naming_the_key) {
  TempDir dir;
  AnalyticsOptions options = scripted("{}");
  options.transport_plugin = (dir.path() / "no-such-transport.so").string();
  try {
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
    BOOST_FAIL("the host started with a missing transport");
  } catch (const wep::host_stub::HostError& e) {
    BOOST_TEST(std::string(e.what()).find("transport") != std::string::npos, e.what());
    BOOST_TEST(std::string(e.what()).find("no-such-transport.so") != std::string::npos, e.what());
  }

  options.transport_plugin = WEP_ANALYTICS_PATH;  // an effect plugin, not a transport
  try {
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
    BOOST_FAIL("the host started with an effect plugin as transport");
  } catch (const wep::host_stub::HostError& e) {
    BOOST_TEST(std::string(e.what()).find("not a transport") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(rows_survive_a_restart_and_are_delivered_after_it) {
  TempDir dir;
  {
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted("{}")));
    mutate_notes(host, 1, 25);
    BOOST_TEST(host.pending().value_or(-1) == 25);
  }
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, scripted("{}")));
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  BOOST_TEST(delivered_rows(dir.path()).size() == 25u);
}
