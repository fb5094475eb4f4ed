// Delivery through every fault, end to end: the real analytics plugin in the
// host stub (in-process), its flusher, the real supabase transport over real
// HTTPS (certificate verification on) to the loopback PostgREST backend with
// fault injection. Every fault ends with every row delivered exactly once
// (or dead-lettered for a poison row) and pending 0.
#define BOOST_TEST_MODULE delivery_supabase
#include <dlfcn.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <wep/test_backend/backend.hpp>
#include <thread>
#include <vector>
#include <wep/test/mapped_library.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using namespace std::chrono_literals;
using wep::test::Backend;
using wep::test::BackendOptions;
using wep::test::Counters;

namespace {

std::string supabase_config(const Backend& backend, uint32_t timeout_ms = 2000, const std::string& api_key = "") {
  return supabase_config_json(backend.url(), api_key.empty() ? backend.api_key() : api_key,
                              wep::test::test_certificates().ca_file, timeout_ms, backend.table());
}

AnalyticsOptions supabase(const Backend& backend, uint32_t timeout_ms = 2000) {
  AnalyticsOptions options;
  options.transport_plugin = WEP_SUPABASE_PATH;
  options.transport_config_json = supabase_config(backend, timeout_ms);
  return options;
}

void mutate_notes(wep::host_stub::Host& host, int64_t first_n, int64_t count) {
  for (int64_t n = first_n; n < first_n + count; ++n) host.mutate("note.created", payload(n));
}

// The backend holds exactly the mutations first_n .. last_n (by their unique
// "n"), each once, all of type `event_type`, with distinct event ids; and it
// saw no contract violation.
void expect_exactly_once(const Backend& backend, int64_t first_n, int64_t last_n,
                         const std::set<int64_t>& excluded = {}) {
  std::map<int64_t, int> seen;
  std::set<std::string> ids;
  for (const auto& row : backend.rows()) {
    ++seen[n_of(row.properties_json)];
    ids.insert(row.event_id);
    BOOST_TEST(row.created_at.back() == 'Z');
  }
  for (int64_t n = first_n; n <= last_n; ++n) {
    if (excluded.count(n)) {
      BOOST_TEST(seen.count(n) == 0u, "n=" << n << " must not arrive");
    } else {
      BOOST_TEST(seen[n] == 1, "n=" << n << " arrived " << seen[n] << " times");
    }
  }
  BOOST_TEST(backend.row_count() == static_cast<size_t>(last_n - first_n + 1) - excluded.size());
  BOOST_TEST(ids.size() == backend.row_count());
  BOOST_TEST(backend.counters().contract_violations == 0u);
}

// Mutates 1..count offline, goes online, waits for pending 0.
void deliver(wep::host_stub::Host& host, int64_t count) {
  mutate_notes(host, 1, count);
  BOOST_TEST(host.pending().value_or(-1) == count);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(no_fault_delivers_every_row_once_over_one_keep_alive_connection) {
  Backend backend;
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  deliver(host, 200);
  expect_exactly_once(backend, 1, 200);
  const Counters counters = backend.counters();
  BOOST_TEST(counters.insert_requests == 4u);  // batch_size 50
  BOOST_TEST(counters.connections == 1u);
  BOOST_TEST(stat(host, "delivered") == 200);
  // The wire: properties as an object, the pseudonymous user id, ISO time.
  const auto row = backend.rows().front();
  BOOST_TEST(row.event_type == "note_created");
  BOOST_TEST(row.properties_json == R"({"n":1})");
  BOOST_TEST(row.user_id.value_or("") == host.pseudonymous_id());
}

BOOST_AUTO_TEST_CASE(server_errors_are_retried_until_delivered) {
  Backend backend;
  backend.fail_next(3, 503);
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  deliver(host, 120);
  expect_exactly_once(backend, 1, 120);
  BOOST_TEST(stat(host, "retries") >= 3);
  BOOST_TEST(backend.counters().responses_by_status[503] == 3u);
}

BOOST_AUTO_TEST_CASE(throttling_with_retry_after_is_honoured) {
  Backend backend;
  backend.throttle_next(2, "1");  // seconds; honoured within [backoff.initial_ms, backoff.max_ms]
  TempDir dir;
  AnalyticsOptions options = supabase(backend);
  options.backoff_max_ms = 5000;  // the flusher's own draws stay far below (initial 10 ms)
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  const auto started = std::chrono::steady_clock::now();
  deliver(host, 60);
  const auto took = std::chrono::steady_clock::now() - started;
  BOOST_TEST(took >= 1900ms, "two Retry-After: 1 answers, delivered after "
                                 << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  expect_exactly_once(backend, 1, 60);
  BOOST_TEST(backend.counters().responses_by_status[429] == 2u);
  BOOST_TEST(stat(host, "retries") >= 2);
}

BOOST_AUTO_TEST_CASE(payload_too_large_splits_batches_until_they_fit) {
  Backend backend;
  backend.set_max_body_bytes(3000);  // a row is ~200 bytes on the wire: 50-row batches do not fit
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  deliver(host, 150);
  expect_exactly_once(backend, 1, 150);
  BOOST_TEST(backend.counters().responses_by_status[413] >= 1u);
  BOOST_TEST(stat(host, "splits") >= 3);
  BOOST_TEST(stat(host, "dead_lettered") == 0);
}

// batch_max_bytes bounds the request body the transport really sends: a
// server that refuses any body above the cap never has to refuse one (no
// 413, no split), and the cap still cuts batches well below batch_size.
BOOST_AUTO_TEST_CASE(the_byte_cap_bounds_the_request_body_on_the_wire) {
  constexpr uint32_t kCapBytes = 4096;
  Backend backend;
  backend.set_max_body_bytes(kCapBytes);  // 413 for any body above the cap
  TempDir dir;
  AnalyticsOptions options = supabase(backend);
  options.batch_max_bytes = kCapBytes;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  for (int64_t n = 1; n <= 150; ++n) host.mutate("note.created", payload(n, std::string(40, 'x')));
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_exactly_once(backend, 1, 150);
  const Counters counters = backend.counters();
  BOOST_TEST_MESSAGE(counters.insert_requests << " requests for 150 rows under a " << kCapBytes << "-byte cap");
  BOOST_TEST(counters.responses_by_status.count(413) == 0u, "a body above batch_max_bytes went out");
  BOOST_TEST(stat(host, "splits") == 0);
  BOOST_TEST(counters.insert_requests >= 150u / 50 + 2);  // the cap, not batch_size 50, cut the batches
}

BOOST_AUTO_TEST_CASE(a_rejected_event_type_is_dead_lettered_and_the_rest_delivered) {
  Backend backend;
  backend.reject_event_type("poison");
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  mutate_notes(host, 1, 30);
  host.mutate("poison.made", payload(31));
  mutate_notes(host, 32, 30);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_exactly_once(backend, 1, 61, {31});
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].event_type == "poison");
  BOOST_TEST(dead[0].reason.find("400") != std::string::npos, dead[0].reason);
  BOOST_TEST(stat(host, "dead_lettered") == 1);
}

BOOST_AUTO_TEST_CASE(a_conflict_409_is_dead_lettered_and_the_rest_delivered) {
  Backend backend;
  backend.reject_event_type("poison", 409);
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  mutate_notes(host, 1, 40);
  host.mutate("poison.made", payload(41));
  mutate_notes(host, 42, 40);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_exactly_once(backend, 1, 81, {41});
  BOOST_TEST(backend.counters().responses_by_status[409] >= 1u);
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].event_type == "poison");
  BOOST_TEST(n_of(dead[0].properties) == 41);
  BOOST_TEST(dead[0].reason.find("409") != std::string::npos, dead[0].reason);
  BOOST_TEST(stat(host, "dead_lettered") == 1);
  BOOST_TEST(stat(host, "delivered") == 80);
}

BOOST_AUTO_TEST_CASE(a_reset_before_the_reply_is_retried) {
  Backend backend;
  backend.reset_before_reply_next(2);
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  deliver(host, 100);
  expect_exactly_once(backend, 1, 100);
  BOOST_TEST(backend.counters().resets == 2u);
}

BOOST_AUTO_TEST_CASE(a_reset_after_the_store_creates_no_duplicate) {
  Backend backend;
  backend.reset_after_store_next(2);
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  deliver(host, 100);
  expect_exactly_once(backend, 1, 100);
  const Counters counters = backend.counters();
  BOOST_TEST(counters.resets == 2u);
  // The client re-sent rows the server already had; the server ignored them.
  BOOST_TEST(counters.duplicates_ignored >= 50u);
}

BOOST_AUTO_TEST_CASE(a_reply_slower_than_the_timeout_is_retried_without_duplicates) {
  Backend backend;
  backend.delay_next(1, 30s);  // held until released; the client gives up after 500 ms
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 500)));
  deliver(host, 80);
  backend.release_delayed();  // the held request now stores its rows too: duplicates, ignored
  BOOST_TEST(backend.wait_until([](const Counters& c) { return c.delayed_in_progress == 0; }, 10s));
  expect_exactly_once(backend, 1, 80);
  BOOST_TEST(stat(host, "retries") >= 1);
}

// While online, rows stored one by one are sent together once per
// flush_interval_ms, not one request per row. The pacing of the mutations is
// the test's input (a trickle over about 3 s), not a wait for a result.
BOOST_AUTO_TEST_CASE(a_steady_trickle_is_sent_in_batches_every_flush_interval) {
  Backend backend;
  TempDir dir;
  AnalyticsOptions options = supabase(backend);
  options.flush_interval_ms = 500;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  host.set_online(true);
  BOOST_TEST_REQUIRE(host.pending().value_or(-1) == 0);  // barrier: the plugin has seen "online"
  constexpr int kEvents = 60;
  const auto started = std::chrono::steady_clock::now();
  for (int n = 1; n <= kEvents; ++n) {
    std::this_thread::sleep_until(started + n * 50ms);
    host.mutate("note.created", payload(n));
  }
  const auto trickled = std::chrono::steady_clock::now() - started;
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_exactly_once(backend, 1, kEvents);
  const uint64_t requests = backend.counters().insert_requests;
  const auto intervals = std::chrono::duration_cast<std::chrono::milliseconds>(trickled).count() / 500;
  BOOST_TEST_MESSAGE(kEvents << " events over " << intervals * 500 << "+ ms in " << requests << " requests");
  // About one request per interval (plus the first row, sent at once, and a
  // pass or two that found the queue empty on a slow machine), never one per row.
  BOOST_TEST(requests >= 3u);
  BOOST_TEST(requests <= static_cast<uint64_t>(intervals) + 4,
             requests << " requests for " << intervals << " flush intervals");
}

BOOST_AUTO_TEST_CASE(opt_out_sends_nothing_and_keeps_rows) {
  Backend backend;
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  mutate_notes(host, 1, 20);
  host.set_setting("analytics_enabled", "false");
  host.set_online(true);
  BOOST_TEST(host.pending().value_or(-1) == 20);  // barrier: the plugin has seen the setting and online
  // The flusher thread has acted on both changes and parked.
  BOOST_TEST(eventually([&] { return stat_text(host, "flusher") == "paused"; }));
  mutate_notes(host, 21, 5);  // not enqueued while disabled
  BOOST_TEST(host.pending().value_or(-1) == 20);
  BOOST_TEST(stat_text(host, "flusher") == "paused");
  BOOST_TEST(backend.counters().insert_requests == 0u);
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 20);

  host.set_setting("analytics_enabled", "true");
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_exactly_once(backend, 1, 20);
}

BOOST_AUTO_TEST_CASE(offline_stops_sending_and_abandons_the_request_in_flight) {
  Backend backend;
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 60000)));
  deliver(host, 30);
  expect_exactly_once(backend, 1, 30);

  // A request in flight when the host goes offline is abandoned at once (its
  // timeout is a minute) and the rows stay queued.
  backend.delay_next(1, 60s);
  mutate_notes(host, 31, 10);
  BOOST_TEST_REQUIRE(backend.wait_until([](const Counters& c) { return c.delayed_in_progress == 1; }, 30s));
  BOOST_TEST_REQUIRE(stat(host, "requests_in_flight") == 1);
  host.set_online(false);
  // Abandoned: the flusher's send returns long before the request's minute.
  BOOST_TEST(eventually([&] { return stat(host, "requests_in_flight") == 0; }, 10s));
  BOOST_TEST(backend.counters().delayed_in_progress == 1u);  // the server still holds it
  BOOST_TEST(host.pending().value_or(-1) == 10);
  const uint64_t requests_offline = backend.counters().insert_requests;
  mutate_notes(host, 41, 10);
  BOOST_TEST(host.pending().value_or(-1) == 20);
  BOOST_TEST(backend.counters().insert_requests == requests_offline);

  backend.release_delayed();  // the abandoned request's rows reach the server after all
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  BOOST_TEST(backend.wait_until([](const Counters& c) { return c.delayed_in_progress == 0; }, 10s));
  expect_exactly_once(backend, 1, 50);
}

BOOST_AUTO_TEST_CASE(stop_does_not_wait_for_a_slow_request) {
  Backend backend;
  backend.delay_next(1, 60s);
  TempDir dir;
  {
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 60000)));
    mutate_notes(host, 1, 10);
    host.set_online(true);
    BOOST_TEST_REQUIRE(backend.wait_until([](const Counters& c) { return c.delayed_in_progress == 1; }, 30s));
    const auto started = std::chrono::steady_clock::now();
    host.shutdown();  // cancels the request after half the stop timeout; would otherwise wait a minute
    const auto took = std::chrono::steady_clock::now() - started;
    BOOST_TEST(took < 20s, "shutdown took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                            << " ms with a request held for 60 s");
  }
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 10);  // nothing lost
}

BOOST_AUTO_TEST_CASE(auth_failure_keeps_rows_and_reports) {
  Backend backend;
  TempDir dir;
  AnalyticsOptions options = supabase(backend);
  options.transport_config_json = supabase_config(backend, 2000, "a-wrong-key");
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 400;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 10);
  const auto started = std::chrono::steady_clock::now();
  host.set_online(true);
  BOOST_TEST(eventually([&] { return stat(host, "retries") >= 1; }));
  BOOST_TEST(stat_text(host, "last_error").find("401") != std::string::npos, stat_text(host, "last_error"));
  // Backs off at the maximum every time: the third request comes after two
  // waits of backoff_max_ms (from 5 ms doubling it would come within 20 ms).
  BOOST_TEST_REQUIRE(backend.wait_until([](const Counters& c) { return c.insert_requests >= 3; }, 30s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  BOOST_TEST(took.count() >= 2 * 400, "3 requests after " << took.count() << " ms");
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(backend.row_count() == 0u);
  BOOST_TEST(backend.counters().responses_by_status[401] >= 3u);
  BOOST_TEST(dead_letters(analytics_db(dir.path())).empty());
}

BOOST_AUTO_TEST_CASE(missing_table_keeps_rows_and_reports) {
  Backend backend;
  backend.fail_next(1000, 404);
  TempDir dir;
  AnalyticsOptions options = supabase(backend);
  options.backoff_max_ms = 600000;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 1, 10);
  host.set_online(true);
  BOOST_TEST(eventually([&] { return stat(host, "retries") >= 1; }));
  BOOST_TEST(stat_text(host, "last_error").find("404") != std::string::npos, stat_text(host, "last_error"));
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(backend.row_count() == 0u);
}

BOOST_AUTO_TEST_CASE(an_untrusted_certificate_delivers_nothing_and_keeps_rows) {
  const auto& certs = wep::test::test_certificates();
  BackendOptions backend_options;
  backend_options.cert_file = certs.untrusted_server_cert;
  backend_options.key_file = certs.untrusted_server_key;
  Backend backend(backend_options);
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  mutate_notes(host, 1, 10);
  host.set_online(true);
  BOOST_TEST(eventually([&] { return stat(host, "retries") >= 2; }));  // keeps trying, with backoff
  // The failure named for what it is: a certificate the client does not
  // trust, reported as a failed (not retry-later) verdict.
  const std::string last_error = stat_text(host, "last_error");
  BOOST_TEST(last_error.find("failed") != std::string::npos, last_error);
  BOOST_TEST(last_error.find("certificate") != std::string::npos, last_error);
  BOOST_TEST(host.pending().value_or(-1) == 10);
  BOOST_TEST(backend.row_count() == 0u);
  BOOST_TEST(backend.counters().insert_requests == 0u);  // the handshake failed: no request reached it
}

BOOST_AUTO_TEST_CASE(switching_to_the_ndjson_transport_is_a_config_change_only) {
  Backend backend;
  TempDir dir;
  {
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
    deliver(host, 10);
    mutate_notes(host, 11, 15);  // stored while online: sent without a connectivity change
    BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  }
  expect_exactly_once(backend, 1, 25);

  // Same data dir, same plugin: only the transport entry of the config changes.
  AnalyticsOptions options;
  options.transport_plugin = WEP_NDJSON_PATH;
  options.transport_config_json = R"({"path":"events.ndjson"})";
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
  mutate_notes(host, 26, 20);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);

  const auto lines = read_lines(transport_dir(dir.path()) / "events.ndjson");
  BOOST_TEST_REQUIRE(lines.size() == 20u);
  std::set<int64_t> ns;
  for (const std::string& line : lines) {
    rapidjson::Document row;
    BOOST_TEST_REQUIRE(!row.Parse(line.c_str()).HasParseError());
    BOOST_TEST_REQUIRE(row.IsObject());
    BOOST_TEST(row["event_type"].GetString() == std::string("note_created"));
    BOOST_TEST(row["event_id"].IsString());
    BOOST_TEST(row["properties"].IsObject());
    ns.insert(row["properties"]["n"].GetInt64());
  }
  BOOST_TEST(ns.size() == 20u);
  BOOST_TEST(*ns.begin() == 26);
  BOOST_TEST(*ns.rbegin() == 45);
  BOOST_TEST(backend.row_count() == 25u);  // nothing more went to the old backend
}

namespace {

using wep::test::is_mapped;

int64_t lane_dropped(wep::host_stub::Host& host, const char* effect) {
  rapidjson::Document stats;
  stats.Parse(host.stats_json().c_str());
  const std::string pointer = std::string("/effects/") + effect + "/dropped";
  const rapidjson::Value* value = rapidjson::Pointer(pointer.c_str()).Get(stats);
  return value && value->IsInt64() ? value->GetInt64() : -1;
}

}  // namespace

// The run-time swap: while two threads keep committing mutations, analytics
// is reloaded with a config naming another transport. Every mutation lands
// exactly once in one of the two backends, mutations never wait for the
// swap, and the old transport's code is unmapped.
BOOST_AUTO_TEST_CASE(reload_swaps_the_transport_while_mutations_go_on_and_every_event_lands_once) {
  Backend backend;
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend)));
  host.set_online(true);

  std::atomic<int64_t> next_n{1};
  std::atomic<int64_t> committed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&] {
      while (!stop.load()) {
        host.mutate("note.created", payload(next_n.fetch_add(1)));
        committed.fetch_add(1);
      }
    });
  }
  BOOST_TEST_REQUIRE(backend.wait_for_rows(200, 60s));
  BOOST_TEST_REQUIRE(is_mapped(WEP_SUPABASE_PATH));

  // The old transport has a request in flight when the swap starts, already
  // applied by the server, its reply 1 s away: it completes inside the stop
  // grace, so its rows are settled, not sent again through the new transport.
  backend.delay_reply_after_store_next(1, 1s);
  BOOST_TEST_REQUIRE(backend.wait_until([](const Counters& c) { return c.delayed_in_progress == 1; }, 30s));
  AnalyticsOptions ndjson;
  ndjson.transport_plugin = WEP_NDJSON_PATH;
  ndjson.transport_config_json = R"({"path":"swapped.ndjson"})";
  const int64_t before = committed.load();
  host.reload_plugin("analytics", analytics_config_json(ndjson));
  const int64_t during = committed.load() - before;
  BOOST_TEST(during >= 10, during << " mutations completed while the reload ran: mutate waited for the swap");
  BOOST_TEST(!is_mapped(WEP_SUPABASE_PATH));  // the old instance's transport is gone with it

  const auto ndjson_file = transport_dir(dir.path()) / "swapped.ndjson";
  BOOST_TEST(eventually([&] { return read_lines(ndjson_file).size() >= 200; }));
  stop.store(true);
  for (auto& writer : writers) writer.join();
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  const int64_t last_n = next_n.load() - 1;
  BOOST_TEST(committed.load() == last_n);

  std::map<int64_t, int> arrivals;
  for (const auto& row : backend.rows()) ++arrivals[n_of(row.properties_json)];
  const size_t via_supabase = arrivals.size();
  for (const std::string& line : read_lines(ndjson_file)) {
    rapidjson::Document row;
    BOOST_TEST_REQUIRE(!row.Parse(line.c_str()).HasParseError());
    ++arrivals[row["properties"]["n"].GetInt64()];
  }
  BOOST_TEST_MESSAGE(last_n << " mutations: " << via_supabase << " via supabase, " << arrivals.size() - via_supabase
                            << " via ndjson, " << during << " committed during the reload");
  BOOST_TEST(via_supabase >= 200u);
  BOOST_TEST(arrivals.size() == static_cast<size_t>(last_n));
  int64_t wrong = 0;
  for (int64_t n = 1; n <= last_n; ++n) {
    if (arrivals[n] != 1) {
      if (++wrong <= 10) BOOST_TEST(arrivals[n] == 1, "n=" << n << " arrived " << arrivals[n] << " times");
    }
  }
  BOOST_TEST(wrong == 0);
  BOOST_TEST(lane_dropped(host, "analytics") == 0);

  host.unload_plugin("analytics");
  BOOST_TEST(!is_mapped(WEP_ANALYTICS_PATH));
  BOOST_TEST(!is_mapped(WEP_NDJSON_PATH));
  BOOST_TEST(host.plugins().empty());
}
