// The supabase transport, loaded for real through wep::PluginLibrary, against
// the loopback HTTPS backend: the wire contract, every verdict, TLS checks,
// keep-alive, timeout and cancel, bad configs, load/unload cycles.
#define BOOST_TEST_MODULE supabase_transport
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <thread>

#include "wep/test_backend/backend.hpp"
#include "transport_test_support.hpp"

using namespace std::chrono_literals;
using wep::test::Backend;
using wep::test::BackendOptions;
using wep::test::LoadedTransport;
using wep::test::Rows;
using wep::test::TempDir;
using wep::test::test_certificates;

namespace {

constexpr auto kWait = 20s;  // safety net for waits on real conditions

std::string config_for(const Backend& backend, const std::string& extra = "", const std::string& url = "") {
  return "{\"url\":\"" + (url.empty() ? backend.url() : url) + "\",\"api_key\":\"" + backend.api_key() +
         "\",\"ca_file\":\"" + test_certificates().ca_file + "\"" + extra + "}";
}

struct Fixture {
  Backend backend;
  TempDir data_dir;
  LoadedTransport transport;

  explicit Fixture(BackendOptions options = {}, const std::string& extra_config = "")
      : backend(std::move(options)), transport(WEP_SUPABASE_PATH, config_for(backend, extra_config), data_dir.str()) {
    const std::string error = transport.start();
    BOOST_REQUIRE_MESSAGE(error.empty(), error);
  }
};

// Evaluates `expression` (e.g. a send) exactly once.
#define CHECK_VERDICT(expression, expected)                                                                       \
  do {                                                                                                            \
    const wep::test::Outcome outcome_ = (expression);                                                             \
    BOOST_CHECK_MESSAGE(outcome_.kind == (expected), "verdict " << wep::test::verdict_name(outcome_.kind) << " (" \
                                                                << outcome_.reason << "), expected "              \
                                                                << wep::test::verdict_name(expected));            \
  } while (false)

}  // namespace

BOOST_AUTO_TEST_CASE(delivers_a_batch_as_the_contract_says) {
  Fixture f;
  Rows rows;
  rows.add(1, "note_created", "{\"words\":3,\"tags\":[\"a\"],\"nested\":{\"x\":1.5}}")
      .add(2, "note_deleted", "", "")  // null properties, null user
      .add(3, "app_opened", "{}", "pseudo-user-1", "2026-11-20T10:00:00Z");
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(outcome.http_status, 201);
  BOOST_CHECK(f.backend.contract_violations().empty());

  BOOST_REQUIRE_EQUAL(f.backend.row_count(), 3u);
  const auto first = f.backend.row(wep::test::event_id_for(1));
  BOOST_REQUIRE(first);
  BOOST_CHECK_EQUAL(first->event_type, "note_created");
  BOOST_CHECK_EQUAL(first->properties_json, "{\"words\":3,\"tags\":[\"a\"],\"nested\":{\"x\":1.5}}");
  BOOST_CHECK_EQUAL(first->created_at, "2026-11-20T10:00:00.123Z");
  BOOST_REQUIRE(first->user_id);
  BOOST_CHECK_EQUAL(*first->user_id, "pseudo-user-1");
  const auto second = f.backend.row(wep::test::event_id_for(2));
  BOOST_REQUIRE(second);
  BOOST_CHECK_EQUAL(second->properties_json, "null");
  BOOST_CHECK(!second->user_id);
  BOOST_CHECK_EQUAL(f.backend.row(wep::test::event_id_for(3))->created_at, "2026-11-20T10:00:00Z");

  const auto request = f.backend.last_insert_request();
  BOOST_REQUIRE(request);
  BOOST_CHECK_EQUAL(request->method, "POST");
  BOOST_CHECK_EQUAL(request->uri, "/rest/v1/analytics_events?on_conflict=event_id");
  BOOST_CHECK_EQUAL(request->headers.at("apikey"), f.backend.api_key());
  BOOST_CHECK(!request->headers.count("authorization"));  // not a JWT: the apikey header only
  BOOST_CHECK_EQUAL(request->headers.at("content-type"), "application/json");
  BOOST_CHECK_EQUAL(request->headers.at("prefer"), "return=minimal, resolution=ignore-duplicates");
  // properties travel as an object, not as a string holding JSON
  BOOST_CHECK(request->body.find("\"properties\":{\"words\":3") != std::string::npos);
  BOOST_CHECK(request->body.find("\"properties\":null") != std::string::npos);
  BOOST_CHECK(request->body.find("\"user_id\":null") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(ip_address_url_is_verified_against_the_ip_san) {
  Backend backend;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend, "", backend.ip_url()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  const auto outcome = transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(backend.row_count(), 1u);
}

BOOST_AUTO_TEST_CASE(keep_alive_reuses_one_connection) {
  Fixture f;
  for (int batch = 0; batch < 5; ++batch) {
    Rows rows;
    rows.add_range(batch * 10 + 1, 10);
    CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  }
  const auto counters = f.backend.counters();
  BOOST_CHECK_EQUAL(counters.insert_requests, 5u);
  BOOST_CHECK_EQUAL(counters.rows_stored, 50u);
  BOOST_CHECK_EQUAL(counters.connections, 1u);
}

BOOST_AUTO_TEST_CASE(duplicates_are_stored_once) {
  Fixture f;
  Rows rows;
  rows.add_range(1, 4);
  CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 4u);
  BOOST_CHECK_EQUAL(f.backend.counters().duplicates_ignored, 4u);
}

BOOST_AUTO_TEST_CASE(server_errors_and_408_ask_to_retry) {
  Fixture f;
  Rows rows;
  rows.add_range(1, 3);
  for (int status : {500, 502, 503, 504, 408}) {
    f.backend.fail_next(1, status);
    const auto outcome = f.transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
    BOOST_CHECK_EQUAL(outcome.http_status, status);
    BOOST_CHECK_EQUAL(outcome.retry_after_ms, -1);
    BOOST_CHECK_EQUAL(f.backend.row_count(), 0u);
  }
  CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 3u);
  BOOST_CHECK_EQUAL(f.backend.counters().connections, 1u);  // error answers keep the connection
}

BOOST_AUTO_TEST_CASE(throttling_honours_retry_after_seconds) {
  Fixture f;
  Rows rows;
  rows.add(1);
  f.backend.throttle_next(1, "7");
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_EQUAL(outcome.http_status, 429);
  BOOST_CHECK_EQUAL(outcome.retry_after_ms, 7000);
}

BOOST_AUTO_TEST_CASE(throttling_honours_retry_after_http_date) {
  Fixture f;
  Rows rows;
  rows.add(1);
  const Poco::Timestamp in_two_minutes = Poco::Timestamp() + Poco::Timespan(120, 0);
  f.backend.throttle_next(1, Poco::DateTimeFormatter::format(in_two_minutes, Poco::DateTimeFormat::HTTP_FORMAT));
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_EQUAL(outcome.http_status, 429);
  // An HTTP-date has one-second resolution: about 120 s from now.
  BOOST_CHECK_GT(outcome.retry_after_ms, 60'000);
  BOOST_CHECK_LE(outcome.retry_after_ms, 120'000);
}

BOOST_AUTO_TEST_CASE(a_body_too_large_is_reported_as_such) {
  Fixture f;
  f.backend.set_max_body_bytes(500);
  Rows rows;
  rows.add_range(1, 10);
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_TOO_LARGE);
  BOOST_CHECK_EQUAL(outcome.http_status, 413);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 0u);
  Rows small;
  small.add(1);
  CHECK_VERDICT(f.transport.send(small), WEP_VERDICT_DELIVERED);
}

BOOST_AUTO_TEST_CASE(a_refused_batch_flags_every_row_for_splitting) {
  Fixture f;
  f.backend.reject_event_type("poison");
  Rows rows;
  rows.add(1).add(2, "poison").add(3);
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_REJECTED);
  BOOST_CHECK_EQUAL(outcome.http_status, 400);
  BOOST_CHECK(outcome.rejected == std::vector<uint8_t>({1, 1, 1}));
  BOOST_CHECK(outcome.reason.find("poison") != std::string::npos);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 0u);

  f.backend.fail_next(1, 409);
  Rows other;
  other.add(4);
  const auto conflict = f.transport.send(other);
  CHECK_VERDICT(conflict, WEP_VERDICT_REJECTED);
  BOOST_CHECK_EQUAL(conflict.http_status, 409);
}

BOOST_AUTO_TEST_CASE(a_row_that_cannot_be_encoded_is_flagged_and_nothing_is_sent) {
  Fixture f;
  Rows rows;
  rows.add(1).add(2, "note_created", "\"a string, not an object\"").add(3, "note_created", "{broken");
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_REJECTED);
  BOOST_CHECK(outcome.rejected == std::vector<uint8_t>({0, 1, 1}));
  BOOST_CHECK(outcome.reason.find(wep::test::event_id_for(2)) != std::string::npos);
  BOOST_CHECK_EQUAL(f.backend.counters().requests, 0u);
}

BOOST_AUTO_TEST_CASE(text_that_needs_escaping_or_is_not_ascii_arrives_intact) {
  Fixture f;
  Rows rows;
  rows.add(1, "quote\"back\\slash", "{\"city\":\"Z\u00fcrich\"}", "user-\xc3\xa9\xe2\x82\xac")  // valid UTF-8
      .add(2, "tab\there", "{\"emoji\":\"\xf0\x9f\x98\x80\"}");
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_DELIVERED);
  BOOST_CHECK(f.backend.contract_violations().empty());
  const auto first = f.backend.row(wep::test::event_id_for(1));
  BOOST_REQUIRE(first);
  BOOST_CHECK_EQUAL(first->event_type, "quote\"back\\slash");
  BOOST_REQUIRE(first->user_id);
  BOOST_CHECK_EQUAL(*first->user_id, "user-\xc3\xa9\xe2\x82\xac");
  const auto second = f.backend.row(wep::test::event_id_for(2));
  BOOST_REQUIRE(second);
  BOOST_CHECK_EQUAL(second->event_type, "tab\there");
  BOOST_CHECK(second->properties_json.find("\xf0\x9f\x98\x80") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_any_field_is_flagged_on_its_own) {
  Fixture f;
  Rows rows;
  rows.add(1)
      .add(2, "bad\xff-type")
      .add(3, "note_created", "{\"k\":\"\xc3\x28\"}")
      .add(4, "note_created", "{}", "user-\xe2\x82")
      .add(5);
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_REJECTED);
  BOOST_CHECK(outcome.rejected == std::vector<uint8_t>({0, 1, 1, 1, 0}));
  BOOST_CHECK_EQUAL(f.backend.counters().requests, 0u);
}

BOOST_AUTO_TEST_CASE(auth_permission_and_missing_table_fail_with_the_cause) {
  Backend backend;
  TempDir dir;
  Rows rows;
  rows.add(1);
  {
    const std::string wrong_key = "wrong-key-12345";
    LoadedTransport transport(WEP_SUPABASE_PATH,
                              "{\"url\":\"" + backend.url() + "\",\"api_key\":\"" + wrong_key + "\",\"ca_file\":\"" +
                                  test_certificates().ca_file + "\"}",
                              dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    const auto outcome = transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_FAILED);
    BOOST_CHECK_EQUAL(outcome.http_status, 401);
    BOOST_CHECK(outcome.reason.find("api_key") != std::string::npos);
    BOOST_CHECK(outcome.reason.find(wrong_key) == std::string::npos);  // the key is never echoed
    for (const auto& line : transport.logs()) BOOST_CHECK(line.find(wrong_key) == std::string::npos);
  }
  {
    LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend), dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    backend.fail_next(1, 403);
    const auto outcome = transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_FAILED);
    BOOST_CHECK_EQUAL(outcome.http_status, 403);
    BOOST_CHECK(outcome.reason.find("permission") != std::string::npos);
  }
  {
    LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend, ",\"table\":\"no_such_table\""), dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    const auto outcome = transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_FAILED);
    BOOST_CHECK_EQUAL(outcome.http_status, 404);
    BOOST_CHECK(outcome.reason.find("no_such_table") != std::string::npos);
  }
  BOOST_CHECK_EQUAL(backend.row_count(), 0u);
}

BOOST_AUTO_TEST_CASE(a_reset_before_the_reply_asks_to_retry_and_the_next_send_reconnects) {
  Fixture f;
  Rows rows;
  rows.add_range(1, 3);
  f.backend.reset_before_reply_next(1);
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_EQUAL(outcome.http_status, 0);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 0u);
  CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 3u);
  BOOST_CHECK_EQUAL(f.backend.counters().connections, 2u);
}

BOOST_AUTO_TEST_CASE(a_reset_after_storing_is_retried_without_duplicates) {
  Fixture f;
  Rows rows;
  rows.add_range(1, 3);
  f.backend.reset_after_store_next(1);
  const auto outcome = f.transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 3u);  // stored, but the client never heard
  CHECK_VERDICT(f.transport.send(rows), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(f.backend.row_count(), 3u);
  BOOST_CHECK_EQUAL(f.backend.counters().duplicates_ignored, 3u);
}

// How long `send` took, in ms.
template <typename Send>
int64_t elapsed_ms(Send&& send) {
  const auto started = std::chrono::steady_clock::now();
  send();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
}

BOOST_AUTO_TEST_CASE(a_slow_reply_is_bounded_by_the_timeout) {
  Fixture f({}, ",\"timeout_ms\":300");
  Rows rows;
  rows.add(1);
  f.backend.delay_next(1, 20s);  // only the timeout can end the send well before this
  wep::test::Outcome outcome;
  const int64_t took = elapsed_ms([&] { outcome = f.transport.send(rows); });
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_TEST_MESSAGE("a reply held for 20 s, timeout_ms 300: send returned after " << took << " ms");
  BOOST_CHECK_GE(took, 250);   // not before the timeout (the phase timer may round down a little)
  BOOST_CHECK_LT(took, 5000);  // a generous bound, far below the 20 s hold
  f.backend.release_delayed();
  Rows next;
  next.add(2);
  CHECK_VERDICT(f.transport.send(next), WEP_VERDICT_DELIVERED);
}

// Listens (the kernel completes TCP connects) but never accepts nor answers:
// a TLS handshake to it never completes.
struct SilentServer {
  Poco::Net::ServerSocket socket{Poco::Net::SocketAddress("127.0.0.1", 0)};
  std::string url() const { return "https://localhost:" + std::to_string(socket.address().port()); }
  std::string config(uint32_t timeout_ms) const {
    return "{\"url\":\"" + url() + "\",\"api_key\":\"k\",\"timeout_ms\":" + std::to_string(timeout_ms) +
           ",\"ca_file\":\"" + test_certificates().ca_file + "\"}";
  }
};

BOOST_AUTO_TEST_CASE(a_server_that_never_answers_the_tls_handshake_is_bounded_by_the_timeout) {
  SilentServer silent;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, silent.config(300), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  // A watchdog turns a send that ignores its timeout into a failed check, not a hang.
  std::atomic<bool> sent{false};
  std::thread watchdog([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!sent.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    if (!sent.load()) transport.cancel();
  });
  wep::test::Outcome outcome;
  const int64_t took = elapsed_ms([&] { outcome = transport.send(rows); });
  sent.store(true);
  watchdog.join();
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_TEST_MESSAGE("handshake never answered, timeout_ms 300: send returned after " << took << " ms");
  BOOST_CHECK_GE(took, 250);
  BOOST_CHECK_LT(took, 5000);
}

// cancel() ends a send stuck in the TLS handshake (timeout 30 s).
// The gate: the server has the connection in its accept queue, so the
// client has connected and is waiting for the server's handshake reply.
BOOST_AUTO_TEST_CASE(cancel_ends_a_send_stuck_in_the_tls_handshake) {
  SilentServer silent;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, silent.config(30000), dir.str());  // 30 s: only cancel() ends it sooner
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  std::atomic<int64_t> cancelled_after_ms{-1};
  const auto started = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    // Accepting here does not answer anything: the client's ClientHello waits unread.
    BOOST_CHECK(silent.socket.poll(Poco::Timespan(20, 0), Poco::Net::Socket::SELECT_READ));
    Poco::Net::StreamSocket accepted = silent.socket.acceptConnection();
    Poco::Timespan wait(20, 0);
    BOOST_CHECK(accepted.poll(wait, Poco::Net::Socket::SELECT_READ));  // the ClientHello arrived: in the handshake
    cancelled_after_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    transport.cancel();
    BOOST_CHECK(accepted.poll(wait, Poco::Net::Socket::SELECT_READ));  // the client closes its end
  });
  wep::test::Outcome outcome;
  const int64_t took = elapsed_ms([&] { outcome = transport.send(rows); });
  canceller.join();
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_MESSAGE(outcome.reason.find("cancelled") != std::string::npos, outcome.reason);
  BOOST_TEST_MESSAGE("cancelled after " << cancelled_after_ms.load() << " ms, send returned after " << took << " ms");
  BOOST_CHECK_GE(cancelled_after_ms.load(), 0);
  BOOST_CHECK_LT(took - cancelled_after_ms.load(), 5000);  // generous; a minute-long handshake would not end
}

BOOST_AUTO_TEST_CASE(a_host_name_that_does_not_resolve_is_retried_later) {
  // .invalid never resolves (RFC 6761). Whether the resolver says so at once
  // or does not answer within timeout_ms, the rows are kept for a retry.
  TempDir dir;
  LoadedTransport transport(
      WEP_SUPABASE_PATH, "{\"url\":\"https://no-such-project.invalid\",\"api_key\":\"k\",\"timeout_ms\":2000}", dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  const auto outcome = transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK_MESSAGE(outcome.reason.find("no-such-project.invalid") != std::string::npos, outcome.reason);
}

BOOST_AUTO_TEST_CASE(cancel_from_another_thread_ends_an_in_flight_request) {
  Fixture f({}, ",\"timeout_ms\":600000");  // only cancel() can end the held request
  Rows rows;
  rows.add(1);
  f.backend.delay_next(1, std::chrono::hours(1));
  std::thread canceller([&] {
    BOOST_CHECK(f.backend.wait_until([](const auto& c) { return c.delayed_in_progress == 1; }, kWait));
    f.transport.cancel();
  });
  const auto outcome = f.transport.send(rows);
  canceller.join();
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK(outcome.reason.find("cancelled") != std::string::npos);

  f.transport.cancel();  // nothing in flight: a no-op that does not affect the next send
  f.backend.release_delayed();
  Rows next;
  next.add(2);
  CHECK_VERDICT(f.transport.send(next), WEP_VERDICT_DELIVERED);
  BOOST_CHECK(f.backend.row(wep::test::event_id_for(2)));
}

BOOST_AUTO_TEST_CASE(an_untrusted_certificate_is_refused_without_any_prompt) {
  BackendOptions options;
  options.cert_file = test_certificates().untrusted_server_cert;
  options.key_file = test_certificates().untrusted_server_key;
  Backend backend(options);
  TempDir dir;

  // If anything prompted "Accept the certificate (y,n)?" on the console it
  // would read these answers from stdin and accept.
  int answers[2];
  BOOST_REQUIRE_EQUAL(pipe(answers), 0);
  const std::string yes = "y\ny\ny\n";
  BOOST_REQUIRE_EQUAL(write(answers[1], yes.data(), yes.size()), static_cast<ssize_t>(yes.size()));
  const int saved_stdin = dup(STDIN_FILENO);
  BOOST_REQUIRE_EQUAL(dup2(answers[0], STDIN_FILENO), STDIN_FILENO);

  Rows rows;
  rows.add(1);
  wep::test::Outcome system_store;
  wep::test::Outcome with_ca_file;
  {
    // The test CA is not in the system store either.
    LoadedTransport transport(
        WEP_SUPABASE_PATH, "{\"url\":\"" + backend.url() + "\",\"api_key\":\"" + backend.api_key() + "\"}", dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    system_store = transport.send(rows);
  }
  {
    LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend), dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    with_ca_file = transport.send(rows);
  }

  // Nobody read the answers.
  fcntl(STDIN_FILENO, F_SETFL, O_NONBLOCK);
  char left[16];
  const ssize_t unread = read(STDIN_FILENO, left, sizeof left);
  dup2(saved_stdin, STDIN_FILENO);
  close(saved_stdin);
  close(answers[0]);
  close(answers[1]);
  BOOST_CHECK_EQUAL(unread, static_cast<ssize_t>(yes.size()));

  for (const auto* outcome : {&system_store, &with_ca_file}) {
    CHECK_VERDICT(*outcome, WEP_VERDICT_FAILED);
    BOOST_CHECK(outcome->reason.find("certificate") != std::string::npos);
  }
  BOOST_CHECK_EQUAL(backend.row_count(), 0u);
  BOOST_CHECK_EQUAL(backend.counters().requests, 0u);
}

BOOST_AUTO_TEST_CASE(a_certificate_for_another_host_is_refused) {
  BackendOptions options;
  options.cert_file = test_certificates().other_host_cert;  // valid chain, wrong name
  options.key_file = test_certificates().other_host_key;
  Backend backend(options);
  TempDir dir;
  Rows rows;
  rows.add(1);
  for (const std::string& url : {backend.url(), backend.ip_url()}) {
    LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend, "", url), dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    const auto outcome = transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_FAILED);
    BOOST_CHECK(outcome.reason.find("certificate") != std::string::npos);
  }
  BOOST_CHECK_EQUAL(backend.counters().requests, 0u);
}

BOOST_AUTO_TEST_CASE(an_unreachable_server_asks_to_retry) {
  std::string url;
  {
    Backend backend;
    url = backend.url();
  }  // stopped: nothing listens on the port any more
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH,
                            "{\"url\":\"" + url + "\",\"api_key\":\"k\",\"timeout_ms\":2000,\"ca_file\":\"" +
                                test_certificates().ca_file + "\"}",
                            dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  const auto outcome = transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_RETRY_LATER);
  BOOST_CHECK(outcome.reason.find("failed") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_server_that_closed_the_idle_connection_is_reconnected_transparently) {
  auto backend = std::make_unique<Backend>();
  BackendOptions same_port;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config_for(*backend), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
  same_port.port = backend->port();
  backend.reset();  // closes the kept connection from the server side
  backend = std::make_unique<Backend>(same_port);
  Rows next;
  next.add(2);
  CHECK_VERDICT(transport.send(next), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(backend->row_count(), 1u);
}

BOOST_AUTO_TEST_CASE(plain_http_urls_work_for_local_testing) {
  BackendOptions options;
  options.plain_http = true;
  Backend backend(options);
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, "{\"url\":\"" + backend.url() + "\",\"api_key\":\"test-anon-key\"}",
                            dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add_range(1, 2);
  CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
  CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
  BOOST_CHECK_EQUAL(backend.row_count(), 2u);
  BOOST_CHECK_EQUAL(backend.counters().connections, 1u);
}

BOOST_AUTO_TEST_CASE(bad_configs_are_refused_naming_the_key) {
  TempDir dir;
  const std::string ca = test_certificates().ca_file;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"api_key\":\"k\"}", "'url'"},
      {"{\"url\":\"https://x.supabase.co\"}", "'api_key'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"\"}", "'api_key'"},
      {"{\"url\":\"ftp://x.supabase.co\",\"api_key\":\"k\"}", "'url'"},
      {"{\"url\":\"https://x.supabase.co?a=b\",\"api_key\":\"k\"}", "'url'"},
      {"{\"url\":42,\"api_key\":\"k\"}", "'url'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\",\"timeout_ms\":\"fast\"}", "'timeout_ms'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\",\"timeout_ms\":0}", "'timeout_ms'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\",\"table\":\"drop table;\"}", "'table'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\",\"ca_file\":\"/no/such/ca.pem\"}", "'ca_file'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\",\"colour\":\"blue\"}", "'colour'"},
      {"{\"url\":\"https://x.supabase.co\",\"api_key\":\"k\"", "not valid JSON"},
      {"[1,2]", "expected an object"},
  };
  for (const auto& [config, expected] : cases) {
    LoadedTransport transport(WEP_SUPABASE_PATH, config, dir.str());
    const std::string error = transport.start();
    BOOST_TEST_CONTEXT("config " << config) {
      BOOST_CHECK_MESSAGE(error.find(expected) != std::string::npos, "error '" << error << "' lacks " << expected);
      BOOST_CHECK(error.find("supabase config") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(load_start_send_stop_unload_100_times) {
  Backend backend;
  TempDir dir;
  constexpr int kCycles = 100;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    {
      LoadedTransport transport(WEP_SUPABASE_PATH, config_for(backend), dir.str());
      BOOST_REQUIRE_EQUAL(transport.start(), "");
      Rows rows;
      rows.add(cycle + 1);
      CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
      BOOST_CHECK_EQUAL(transport.stop(), WEP_OK);
    }
    BOOST_REQUIRE_MESSAGE(!wep::test::is_mapped(WEP_SUPABASE_PATH), "the plugin is still mapped after cycle " << cycle);
  }
  BOOST_CHECK_EQUAL(backend.row_count(), static_cast<size_t>(kCycles));
}
