// What a PostgREST answer means for a batch (plugins/supabase/postgrest_status)
// as a table, and the reply text rules it uses (support/http_text):
// Retry-After in both forms, sanitised body excerpts.
#define BOOST_TEST_MODULE postgrest_status
#include "postgrest_status.hpp"

#include <wep/plugin_api.h>

#include <boost/test/unit_test.hpp>
#include <optional>
#include <string>
#include <wep/support/http_text.hpp>

using wep::supabase::verdict_for_status;
using wep::transport::is_loopback_host;
using wep::transport::is_wire_safe_url_path;
using wep::transport::parse_retry_after_ms;
using wep::transport::sanitized_excerpt;

namespace {

// 2026-12-01T12:00:00Z
constexpr int64_t kNowMs = 1'796'126'400'000;
constexpr const char* kUrl = "https://x.supabase.co/rest/v1/analytics_events";

struct Row {
  int status;
  std::optional<std::string> retry_after;
  int32_t kind;
  int64_t retry_after_ms;
  const char* in_reason;  // a piece the reason must hold
};

const Row kTable[] = {
    {201, std::nullopt, WEP_VERDICT_DELIVERED, -1, ""},
    {200, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "not PostgREST's answer"},
    {204, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "HTTP 204"},
    {302, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "captive portal"},
    {400, std::nullopt, WEP_VERDICT_REJECTED, -1, "rows refused"},
    {409, std::nullopt, WEP_VERDICT_REJECTED, -1, "rows refused"},
    {401, std::nullopt, WEP_VERDICT_FAILED, -1, "api_key"},
    {403, std::nullopt, WEP_VERDICT_FAILED, -1, "row-level security"},
    {404, std::nullopt, WEP_VERDICT_FAILED, -1, "not found"},
    {405, std::nullopt, WEP_VERDICT_FAILED, -1, "unexpected answer"},
    {415, std::nullopt, WEP_VERDICT_FAILED, -1, "HTTP 415"},
    {413, std::nullopt, WEP_VERDICT_TOO_LARGE, -1, "too large"},
    {408, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "HTTP 408"},
    {429, std::string("7"), WEP_VERDICT_RETRY_LATER, 7000, "HTTP 429"},
    {500, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "HTTP 500"},
    {503, std::string("0"), WEP_VERDICT_RETRY_LATER, 0, "HTTP 503"},
    {503, std::string("Tue, 01 Dec 2026 12:00:30 GMT"), WEP_VERDICT_RETRY_LATER, 30000, "HTTP 503"},
    {503, std::string("Mon, 30 Nov 2026 12:00:00 GMT"), WEP_VERDICT_RETRY_LATER, 0, "HTTP 503"},  // in the past
    {503, std::string("soon"), WEP_VERDICT_RETRY_LATER, -1, "HTTP 503"},
    {504, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "HTTP 504"},
    {599, std::nullopt, WEP_VERDICT_RETRY_LATER, -1, "HTTP 599"},
    {600, std::nullopt, WEP_VERDICT_FAILED, -1, "unexpected answer"},
};

}  // namespace

BOOST_AUTO_TEST_CASE(each_status_maps_to_its_verdict) {
  const std::string body = R"({"code":"PGRST204","details":null,"hint":null,"message":"x"})";
  for (const Row& row : kTable) {
    BOOST_TEST_CONTEXT("HTTP " << row.status << " Retry-After " << row.retry_after.value_or("(none)")) {
      std::optional<std::string_view> retry_after;
      if (row.retry_after) retry_after = *row.retry_after;
      const auto verdict = verdict_for_status(row.status, body, retry_after, kNowMs, kUrl, "analytics_events");
      BOOST_TEST(verdict.kind == row.kind);
      BOOST_TEST(verdict.retry_after_ms == row.retry_after_ms);
      BOOST_TEST(verdict.reason.find(row.in_reason) != std::string::npos, verdict.reason);
      if (row.kind != WEP_VERDICT_DELIVERED) {
        BOOST_TEST(verdict.reason.find("HTTP " + std::to_string(row.status)) != std::string::npos);
        BOOST_TEST(verdict.reason.find("PGRST204") != std::string::npos);  // the body's excerpt
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(retry_after_in_its_three_date_forms_and_as_seconds) {
  BOOST_TEST(parse_retry_after_ms("120", kNowMs).value_or(-1) == 120'000);
  BOOST_TEST(parse_retry_after_ms(" 0 ", kNowMs).value_or(-1) == 0);
  BOOST_TEST(parse_retry_after_ms("Tue, 01 Dec 2026 12:01:00 GMT", kNowMs).value_or(-1) == 60'000);
  BOOST_TEST(parse_retry_after_ms("Tuesday, 01-Dec-26 12:01:00 GMT", kNowMs).value_or(-1) == 60'000);
  BOOST_TEST(parse_retry_after_ms("Tue Dec  1 12:01:00 2026", kNowMs).value_or(-1) == 60'000);
  BOOST_TEST(parse_retry_after_ms("Thu, 01 Jan 1970 00:00:00 GMT", kNowMs).value_or(-1) == 0);
  BOOST_TEST(!parse_retry_after_ms("", kNowMs).has_value());
  BOOST_TEST(!parse_retry_after_ms("-5", kNowMs).has_value());
  BOOST_TEST(!parse_retry_after_ms("1.5", kNowMs).has_value());
  BOOST_TEST(!parse_retry_after_ms("99999999999", kNowMs).has_value());
  BOOST_TEST(!parse_retry_after_ms("in a while", kNowMs).has_value());
  BOOST_TEST(!parse_retry_after_ms("0\r\nX-Injected: 1", kNowMs).has_value());
}

BOOST_AUTO_TEST_CASE(body_excerpts_are_short_single_line_printable_ascii) {
  BOOST_TEST(sanitized_excerpt("") == "(empty body)");
  BOOST_TEST(sanitized_excerpt("  \r\n ") == "(empty body)");
  BOOST_TEST(sanitized_excerpt("<html>\r\n  <body>Sign in</body>\n</html>") == "<html> <body>Sign in</body> </html>");
  BOOST_TEST(sanitized_excerpt("bell\x07 esc\x1b[31mred nul", 100) == "bell? esc?[31mred nul");
  BOOST_TEST(sanitized_excerpt(std::string("a\0b", 3)) == "a?b");
  BOOST_TEST(sanitized_excerpt("caf\xc3\xa9") == "caf??");
  const std::string excerpt = sanitized_excerpt(std::string(10000, 'x'), 200);
  BOOST_TEST(excerpt.size() == 203u);
  BOOST_TEST(excerpt.substr(200) == "...");
}

BOOST_AUTO_TEST_CASE(loopback_hosts_and_wire_safe_paths) {
  for (const char* host : {"localhost", "LOCALHOST", "api.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"})
    BOOST_TEST(is_loopback_host(host), host);
  for (const char* host : {"example.com", "localhost.example.com", "10.0.0.1", "192.168.1.1", "::2", "0.0.0.0", ""})
    BOOST_TEST(!is_loopback_host(host), host);
  for (const char* path : {"", "/", "/base", "/a/b-c_d.e~f", "/%0D%0A", "/%3f%23", "/a:b@c;d=e"})
    BOOST_TEST(is_wire_safe_url_path(path), path);
  for (const char* path : {"/a b", "/a\r\nb", "/%0", "/%zz", "/a?b", "/a#b", "/a\"b", "/caf\xc3\xa9"})
    BOOST_TEST(!is_wire_safe_url_path(path), path);
}
