// Systemic failures against hostile servers, end to end: the analytics plugin
// in the host stub, its flusher, the real supabase transport over HTTPS, and
// test-backend with standing faults. A server that refuses everything, asks
// for Retry-After: 0, or answers like a captive portal keeps every row and
// meets a request rate bounded by the backoff; a bad row is dead-lettered
// only beside accepted rows; a poisonous batch is split; dead letters are
// visible and can be requeued.
#define BOOST_TEST_MODULE delivery_systemic_errors
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <wep/test_backend/backend.hpp>
#include <wep/test/child_process.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using wep::test::ChildProcess;
using namespace std::chrono_literals;
using wep::test::Backend;
using wep::test::Counters;

namespace {

AnalyticsOptions supabase(const Backend& backend, uint32_t backoff_initial_ms, uint32_t backoff_max_ms) {
  AnalyticsOptions options;
  options.transport_plugin = WEP_SUPABASE_PATH;
  options.transport_config_json =
      supabase_config_json(backend.url(), backend.api_key(), wep::test::test_certificates().ca_file, 2000);
  options.backoff_initial_ms = backoff_initial_ms;
  options.backoff_max_ms = backoff_max_ms;
  return options;
}

void mutate_notes(wep::host_stub::Host& host, int64_t first_n, int64_t count) {
  for (int64_t n = first_n; n < first_n + count; ++n) host.mutate("note.created", payload(n));
}

// How many insert requests the backend gets in `window` after `settle`
// requests have arrived (the flusher is then in its steady state).
uint64_t requests_in(const Backend& backend, uint64_t settle, std::chrono::milliseconds window) {
  BOOST_TEST_REQUIRE(backend.wait_until([&](const Counters& c) { return c.insert_requests >= settle; }, 30s));
  const uint64_t before = backend.counters().insert_requests;
  // Waits the whole window unless the rate bound is broken (then it returns
  // early and the caller's check fails): the claim is a rate.
  backend.wait_until([&](const Counters& c) { return c.insert_requests > before + 1000; }, window);
  return backend.counters().insert_requests - before;
}

// Every row of 1..count arrived exactly once.
void expect_all_once(const Backend& backend, int64_t count) {
  std::map<int64_t, int> seen;
  for (const auto& row : backend.rows()) ++seen[n_of(row.properties_json)];
  for (int64_t n = 1; n <= count; ++n) BOOST_TEST(seen[n] == 1, "n=" << n << " arrived " << seen[n] << " times");
  BOOST_TEST(backend.row_count() == static_cast<size_t>(count));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_server_answering_400_to_everything_keeps_every_row_at_a_bounded_rate) {
  Backend backend;
  backend.set_fault("400-all");
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 20, 300)));
  mutate_notes(host, 1, 200);
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "systemic_failures") >= 2; }));
  // At most three requests per pass (the batch, then its halves) and one pass
  // per backoff.max_ms (300 ms): about 15 in 1.5 s. Before: hundreds.
  const uint64_t requests = requests_in(backend, 6, 1500ms);
  BOOST_TEST_MESSAGE("400-all: " << requests << " requests in 1.5 s, backoff.max_ms 300");
  BOOST_TEST(requests <= 30u, requests << " requests in 1.5 s");
  BOOST_TEST(requests >= 3u, "the flusher keeps trying: " << requests);
  BOOST_TEST(host.pending().value_or(-1) == 200);
  BOOST_TEST(stat(host, "dead_lettered") == 0);
  BOOST_TEST(stat(host, "dead_letter_rows") == 0);
  BOOST_TEST(dead_letters(analytics_db(dir.path())).empty());
  const std::string last_error = stat_text(host, "last_error");
  BOOST_TEST(last_error.find("systemic") != std::string::npos, last_error);
  BOOST_TEST(last_error.find("HTTP 400") != std::string::npos, last_error);
  BOOST_TEST(last_error.find("PGRST204") != std::string::npos, last_error);

  backend.set_fault("none");  // the migration is fixed: everything goes out
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_all_once(backend, 200);
}

BOOST_AUTO_TEST_CASE(a_server_answering_503_with_retry_after_0_or_a_past_date_keeps_every_row_at_a_bounded_rate) {
  for (const std::string fault : {"retry-after-0", "retry-after-past"}) {
    BOOST_TEST_CONTEXT(fault) {
      Backend backend;
      backend.set_fault(fault);
      TempDir dir;
      wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 100, 400)));
      mutate_notes(host, 1, 120);
      host.set_online(true);
      // Retry-After is held within [100, 400] ms; after three transient
      // failures in a row a pass splits and then backs off at 400 ms: about
      // 12 requests in 1.5 s. Before: thousands.
      const uint64_t requests = requests_in(backend, 8, 1500ms);
      BOOST_TEST_MESSAGE(fault << ": " << requests << " requests in 1.5 s, backoff 100..400 ms");
      BOOST_TEST(requests <= 30u, requests << " requests in 1.5 s");
      BOOST_TEST(requests >= 3u);
      BOOST_TEST(host.pending().value_or(-1) == 120);
      BOOST_TEST(stat(host, "dead_lettered") == 0);
      BOOST_TEST(stat_text(host, "last_error").find("HTTP 503") != std::string::npos);
      backend.set_fault("none");
      BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
      expect_all_once(backend, 120);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_captive_portal_200_delivers_nothing_and_keeps_every_row) {
  Backend backend;
  backend.set_fault("status:200-html");
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 20, 200)));
  mutate_notes(host, 1, 20);
  host.set_online(true);
  BOOST_TEST_REQUIRE(eventually([&] { return stat_text(host, "last_error").find("HTTP 200") != std::string::npos; }));
  const std::string last_error = stat_text(host, "last_error");
  BOOST_TEST(last_error.find("Sign in to Wi-Fi") != std::string::npos, last_error);  // a sanitised excerpt
  BOOST_TEST(host.pending().value_or(-1) == 20);
  BOOST_TEST(stat(host, "delivered") == 0);
  BOOST_TEST(backend.row_count() == 0u);
  backend.set_fault("none");
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  expect_all_once(backend, 20);
}

BOOST_AUTO_TEST_CASE(a_bad_row_is_dead_lettered_only_beside_accepted_rows_and_can_be_requeued) {
  Backend backend;
  backend.set_fault("reject-type:poison");
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 20, 200)));
  mutate_notes(host, 1, 20);
  host.mutate("poison.made", payload(21));
  mutate_notes(host, 22, 20);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  BOOST_TEST(backend.row_count() == 40u);
  BOOST_TEST(stat(host, "dead_letter_rows") == 1);
  BOOST_TEST(host.dead_letter_rows().value_or(-1) == 1);

  // A batch of bad rows alone: nothing is accepted, so nothing is
  // dead-lettered; the rows wait.
  host.mutate("poison.made", payload(42));
  host.mutate("poison.made", payload(43));
  BOOST_TEST_REQUIRE(eventually([&] { return stat(host, "systemic_failures") >= 1; }));
  BOOST_TEST(host.pending().value_or(-1) == 2);
  BOOST_TEST(stat(host, "dead_letter_rows") == 1);

  // The server is fixed; the dead letter goes back in the queue and out.
  backend.set_fault("none");
  BOOST_TEST(host.requeue_dead_letters() == 1);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  BOOST_TEST(stat(host, "dead_letter_rows") == 0);
  BOOST_TEST(stat(host, "requeued") == 1);
  expect_all_once(backend, 43);
  BOOST_TEST(host.requeue_dead_letters() == 0);
}

BOOST_AUTO_TEST_CASE(a_poisonous_batch_is_split_after_repeated_server_errors) {
  Backend backend;
  backend.set_fault("timeout-type:poison");  // any batch holding it: 500, SQLSTATE 57014
  TempDir dir;
  wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, supabase(backend, 10, 100)));
  mutate_notes(host, 1, 30);
  host.mutate("poison.made", payload(31));
  mutate_notes(host, 32, 30);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
  std::set<int64_t> arrived;
  for (const auto& row : backend.rows()) arrived.insert(n_of(row.properties_json));
  BOOST_TEST(arrived.size() == 60u);
  BOOST_TEST(!arrived.count(31));
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].event_type == "poison");
  BOOST_TEST(dead[0].reason.find("57014") != std::string::npos, dead[0].reason);
  BOOST_TEST(dead[0].reason.find("repeated transient failures") != std::string::npos, dead[0].reason);
  BOOST_TEST(backend.counters().responses_by_status[500] >= 4u);
}

BOOST_AUTO_TEST_CASE(host_stub_shows_dead_letters_and_requeues_them) {
  Backend backend;
  backend.set_fault("reject-type:poison");
  TempDir dir;
  const std::filesystem::path config = dir.path() / "host-stub.json";
  {
    std::ofstream out(config);
    out << host_stub_config_json(dir.path() / "data", WEP_ANALYTICS_PATH, supabase(backend, 10, 100));
  }
  ChildProcess child(HOST_STUB_PATH, {"--config", config.string()}, dir.path() / "host-stub.log");
  for (int n = 1; n <= 5; ++n)
    BOOST_TEST_REQUIRE(child.command("mutate note.created " + payload(n)).rfind("ok ", 0) == 0u);
  BOOST_TEST_REQUIRE(child.command("mutate poison.made " + payload(6)).rfind("ok ", 0) == 0u);
  for (int n = 7; n <= 10; ++n)
    BOOST_TEST_REQUIRE(child.command("mutate note.created " + payload(n)).rfind("ok ", 0) == 0u);
  BOOST_TEST(child.command("online") == "ok");
  BOOST_TEST(child.command("wait-delivered 60000", 90s) == "pending 0 dead-lettered 1");
  backend.set_fault("none");
  BOOST_TEST(child.command("requeue-dead-letters") == "ok 1");
  BOOST_TEST(child.command("wait-delivered 60000", 90s) == "pending 0");
  BOOST_TEST(child.command("requeue-dead-letters") == "ok 0");
  BOOST_TEST(child.command("requeue-dead-letters now") == "error: requeue-dead-letters: takes no argument");
  BOOST_TEST(child.command("quit") == "bye");
  BOOST_TEST(child.wait_exit(30s).value_or(-1) == 0);
  BOOST_TEST(backend.row_count() == 10u);
}
