// The supabase transport's keys and config text against test-backend:
// publishable keys in the apikey header only, legacy anon JWTs also as
// Bearer, secret keys refused at start, control characters refused naming
// the key, the url path sent as written, plain http only to loopback, and
// only PostgREST's 201 counted as delivered.
#define BOOST_TEST_MODULE supabase_keys
#include <Poco/Base64Encoder.h>

#include <boost/test/unit_test.hpp>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "wep/test_backend/backend.hpp"
#include "transport_test_support.hpp"

using wep::test::Backend;
using wep::test::BackendOptions;
using wep::test::LoadedTransport;
using wep::test::Rows;
using wep::test::TempDir;
using wep::test::test_certificates;

namespace {

std::string base64url(const std::string& text) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  encoder << text;
  encoder.close();
  return out.str();
}

// A JWT shaped like Supabase's legacy keys (the signature is not checked by
// the client, so any bytes do).
std::string jwt(const std::string& role) {
  return base64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
         base64url(R"({"iss":"supabase","ref":"abcdefghijklmnop","role":")" + role +
                   R"(","iat":1700000000,"exp":2000000000})") +
         "." + base64url("not-a-real-signature");
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", c);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string config(const std::string& url, const std::string& api_key, const std::string& extra = "") {
  return "{\"url\":" + json_string(url) + ",\"api_key\":" + json_string(api_key) +
         ",\"ca_file\":" + json_string(test_certificates().ca_file) + ",\"timeout_ms\":3000" + extra + "}";
}

// Starts a transport with `config_json`; its start error ("" when started).
std::string start_error(const std::string& config_json) {
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config_json, dir.str());
  return transport.start();
}

BackendOptions with_key(const std::string& key) {
  BackendOptions options;
  options.api_key = key;
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_publishable_key_goes_in_the_apikey_header_only) {
  Backend backend(with_key("sb_publishable_AbCdEf0123456789_xyz"));
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(backend.url(), backend.api_key()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  const auto outcome = transport.send(rows);
  BOOST_TEST(outcome.kind == WEP_VERDICT_DELIVERED, outcome.reason);
  const auto request = backend.last_insert_request();
  BOOST_REQUIRE(request);
  BOOST_TEST(request->headers.at("apikey") == backend.api_key());
  BOOST_TEST(!request->headers.count("authorization"));
  BOOST_TEST(backend.contract_violations().empty());
}

BOOST_AUTO_TEST_CASE(a_legacy_anon_jwt_goes_in_apikey_and_as_bearer) {
  Backend backend(with_key(jwt("anon")));
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(backend.url(), backend.api_key()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  const auto outcome = transport.send(rows);
  BOOST_TEST(outcome.kind == WEP_VERDICT_DELIVERED, outcome.reason);
  const auto request = backend.last_insert_request();
  BOOST_REQUIRE(request);
  BOOST_TEST(request->headers.at("apikey") == backend.api_key());
  BOOST_TEST(request->headers.at("authorization") == "Bearer " + backend.api_key());
}

BOOST_AUTO_TEST_CASE(secret_keys_are_refused_at_start_naming_the_key_never_showing_it) {
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"sb_secret_0123456789abcdefSECRET", "secret key"},
      {jwt("service_role"), "service_role"},
      {"eyJnot.a-jwt", "not one"},
      {"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "not one"},  // payload "not json"
  };
  for (const auto& [key, why] : keys) {
    BOOST_TEST_CONTEXT(why) {
      const std::string error = start_error(config("https://abcd.supabase.co", key));
      BOOST_TEST(error.find("'api_key'") != std::string::npos, error);
      BOOST_TEST(error.find(why) != std::string::npos, error);
      BOOST_TEST(error.find(key) == std::string::npos, "the key itself must never be shown");
    }
  }
  BOOST_TEST(start_error(config("https://abcd.supabase.co", jwt("anon"))) == "");
  BOOST_TEST(start_error(config("https://abcd.supabase.co", "sb_publishable_x")) == "");
}

BOOST_AUTO_TEST_CASE(config_values_with_control_characters_are_refused_naming_the_key) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {config("https://abcd.supabase.co", "k\r\nX-Injected: 1"), "'api_key'"},
      {config("https://abcd.supabase.co", std::string("k\0k", 3)), "'api_key'"},
      {config("https://abcd.supabase.co", "k\x7f"), "'api_key'"},
      {config("https://abcd.supabase.co/a\tb", "k"), "'url'"},
      {config("https://abcd.supabase.co", "k", ",\"ca_file\":\"ca\\n.pem\""), "'ca_file'"},
  };
  for (const auto& [json, key] : cases) {
    BOOST_TEST_CONTEXT(json) {
      const std::string error = start_error(json);
      BOOST_TEST(error.find(key) != std::string::npos, error);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_url_path_stays_percent_encoded_on_the_wire) {
  BackendOptions options;
  options.plain_http = true;
  std::mutex log_mutex;
  std::vector<std::string> log;
  options.request_log = [&](const std::string& line) {
    std::lock_guard lock(log_mutex);
    log.push_back(line);
  };
  Backend backend(options);
  TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(backend.port()) + "/base%0D%0AX-Injected:%201%3F%23";
  LoadedTransport transport(WEP_SUPABASE_PATH, config(url, backend.api_key()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  transport.send(rows);  // answered 404 (unknown path): the point is what went on the wire
  // The log line is written after the answer; the backend notifies after it.
  backend.wait_until(
      [&](const wep::test::Counters&) {
        std::lock_guard lock(log_mutex);
        return !log.empty();
      },
      std::chrono::seconds(10));
  std::lock_guard lock(log_mutex);
  BOOST_REQUIRE_EQUAL(log.size(), 1u);
  BOOST_TEST(log[0].find("POST /base%0D%0AX-Injected:%201%3F%23/rest/v1/analytics_events?on_conflict=event_id") !=
                 std::string::npos,
             log[0]);
  // Refused paths: characters a request line cannot carry as written.
  for (const std::string bad : {"https://abcd.supabase.co/a%zz", "https://abcd.supabase.co/caf\xc3\xa9"}) {
    const std::string error = start_error(config(bad, "k"));
    BOOST_TEST(error.find("'url'") != std::string::npos, error);
  }
}

BOOST_AUTO_TEST_CASE(plain_http_is_refused_unless_the_host_is_loopback) {
  for (const std::string url : {"http://abcd.supabase.co", "http://10.0.0.1:8080", "http://localhost.example.com"}) {
    const std::string error = start_error(config(url, "k"));
    BOOST_TEST(error.find("'url'") != std::string::npos, url + ": " + error);
    BOOST_TEST(error.find("loopback") != std::string::npos, error);
  }
  for (const std::string url : {"http://localhost:1", "http://127.0.0.1:1", "http://[::1]:1"})
    BOOST_TEST(start_error(config(url, "k")) == "", url);
}

BOOST_AUTO_TEST_CASE(only_postgrests_201_counts_as_delivered) {
  Backend backend;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(backend.url(), backend.api_key()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1);
  for (const std::string fault : {"status:200", "status:204", "status:200-html", "status:302"}) {
    BOOST_TEST_CONTEXT(fault) {
      backend.set_fault(fault);
      const auto outcome = transport.send(rows);
      BOOST_TEST(outcome.kind == WEP_VERDICT_RETRY_LATER, outcome.reason);
      BOOST_TEST(outcome.reason.find("HTTP " + fault.substr(7, 3)) != std::string::npos, outcome.reason);
      BOOST_TEST(outcome.reason.find_first_of("\r\n") == std::string::npos);
      backend.set_fault("none");
    }
  }
  backend.set_fault("status:200-html");
  const auto portal = transport.send(rows);
  BOOST_TEST(portal.http_status == 200);
  BOOST_TEST(portal.reason.find("<!DOCTYPE html><html><head><title>Sign in to Wi-Fi") != std::string::npos,
             portal.reason);
  backend.set_fault("none");
  BOOST_TEST(transport.send(rows).kind == WEP_VERDICT_DELIVERED);
  BOOST_TEST(backend.row_count() == 1u);
}

BOOST_AUTO_TEST_CASE(failures_carry_the_status_and_postgrests_error_object) {
  Backend backend;
  TempDir dir;
  LoadedTransport transport(WEP_SUPABASE_PATH, config(backend.url(), backend.api_key()), dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1).add(2);
  backend.set_fault("400-all");
  const auto refused = transport.send(rows);
  BOOST_TEST(refused.kind == WEP_VERDICT_REJECTED);
  BOOST_TEST(refused.http_status == 400);
  BOOST_TEST(refused.reason.find("PGRST204") != std::string::npos, refused.reason);
  backend.set_fault("retry-after-0");
  const auto busy = transport.send(rows);
  BOOST_TEST(busy.kind == WEP_VERDICT_RETRY_LATER);
  BOOST_TEST(busy.retry_after_ms == 0);  // the flusher holds it within its backoff bounds
  BOOST_TEST(busy.reason.find("PGRST001") != std::string::npos, busy.reason);
  backend.set_fault("retry-after-past");
  BOOST_TEST(transport.send(rows).retry_after_ms == 0);
  backend.set_fault("none");
  backend.set_fault("timeout-type:note_created");
  const auto timeout = transport.send(rows);
  BOOST_TEST(timeout.kind == WEP_VERDICT_RETRY_LATER);
  BOOST_TEST(timeout.http_status == 500);
  BOOST_TEST(timeout.reason.find("57014") != std::string::npos, timeout.reason);
}
