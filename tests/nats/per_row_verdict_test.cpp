// Plugin API 1.2's per-row verdict: the flusher (the real analytics plugin in
// the host stub) settles each row as a 1.2 transport says; a transport built
// for API 1.1 still works; wep::Verdict::per_row answers a 1.1 caller with
// the older kinds; a short resend window is warned about.
#define BOOST_TEST_MODULE nats_per_row_verdict
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <set>
#include <string>
#include <wep/plugin_host.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using namespace std::chrono_literals;

namespace {

AnalyticsOptions with_transport(const std::string& plugin, const std::string& config_json) {
  AnalyticsOptions options;
  options.transport_plugin = plugin;
  options.transport_config_json = config_json;
  return options;
}

std::set<std::string> delivered_ids(const std::filesystem::path& data_dir, const std::string& file) {
  std::set<std::string> ids;
  for (const std::string& line : read_lines(transport_dir(data_dir) / file)) ids.insert(line.substr(0, line.find(' ')));
  return ids;
}

struct RawVerdict {
  explicit RawVerdict(bool per_row_ok) : flags(3, 0) {
    raw.struct_size = per_row_ok ? sizeof(wep_verdict) : offsetof(wep_verdict, per_row_ok);
    raw.kind = WEP_VERDICT_FAILED;
    raw.retry_after_ms = -1;
    raw.rejected = flags.data();
    raw.reason = wep::string_sink(reason);
    raw.per_row_ok = per_row_ok ? 1 : 0;
  }
  wep_verdict raw{};
  std::vector<uint8_t> flags;
  std::string reason;
};

}  // namespace

BOOST_AUTO_TEST_CASE(per_row_verdicts_delete_delivered_rows_dead_letter_refused_ones_and_resend_the_rest) {
  TempDir dir;
  wep::host_stub::Host host(
      host_options(dir.path(), WEP_ANALYTICS_PATH,
                   with_transport(PER_ROW_TRANSPORT_PATH,
                                  R"({"reject_event_types": ["poison"], "retry_first_send_of_odd": true})")));
  for (int64_t n = 1; n <= 40; ++n) host.mutate("note.created", payload(n));
  for (int64_t n = 41; n <= 43; ++n) host.mutate("poison.made", payload(n));
  // All stored before the first read: a refused row alone in a batch is a
  // systemic failure (kept), not a dead letter.
  BOOST_TEST_REQUIRE(host.pending().value_or(-1) == 43);
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);

  BOOST_TEST(delivered_ids(dir.path(), "delivered.log").size() == 40u);
  BOOST_TEST(stat(host, "delivered") == 40);
  BOOST_TEST(stat(host, "dead_lettered") == 3);
  BOOST_TEST(stat(host, "splits") == 0);   // the transport named the refused rows: nothing to bisect
  BOOST_TEST(stat(host, "retries") >= 1);  // the odd rows came back unsettled once
  const auto dead = dead_letters(analytics_db(dir.path()));
  BOOST_TEST_REQUIRE(dead.size() == 3u);
  for (const auto& d : dead) BOOST_TEST(d.event_type == "poison");
  BOOST_TEST(queue_rows(analytics_db(dir.path())) == 0);
}

BOOST_AUTO_TEST_CASE(a_resend_window_shorter_than_backoff_max_is_warned_about_in_stats) {
  {
    TempDir dir;
    AnalyticsOptions options = with_transport(PER_ROW_TRANSPORT_PATH, R"({"resend_window_ms": 50})");
    options.backoff_max_ms = 200;
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
    const std::string last_error = stat_text(host, "last_error");
    BOOST_TEST(last_error.find("50 ms") != std::string::npos, last_error);
    BOOST_TEST(last_error.find("shorter than backoff.max_ms (200 ms)") != std::string::npos, last_error);
  }
  {
    TempDir dir;
    AnalyticsOptions options = with_transport(PER_ROW_TRANSPORT_PATH, R"({"resend_window_ms": 120000})");
    options.backoff_max_ms = 200;
    wep::host_stub::Host host(host_options(dir.path(), WEP_ANALYTICS_PATH, options));
    BOOST_TEST(stat_text(host, "last_error").find("backoff.max_ms") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_transport_built_for_api_1_1_still_delivers_through_a_1_2_flusher) {
  std::string error;
  auto library = wep::PluginLibrary::open(SCRIPTED_TRANSPORT_V1_1_PATH, error);
  BOOST_TEST_REQUIRE(library != nullptr, error);
  BOOST_TEST(library->descriptor().api_minor == 1);
  BOOST_TEST(library->descriptor().transport->struct_size == offsetof(wep_transport_vtable, resend_window_ms));

  TempDir dir;
  wep::host_stub::Host host(
      host_options(dir.path(), WEP_ANALYTICS_PATH,
                   with_transport(SCRIPTED_TRANSPORT_V1_1_PATH,
                                  R"({"reject_event_types": ["poison"], "identify_rejected": true})")));
  for (int64_t n = 1; n <= 30; ++n) host.mutate("note.created", payload(n));
  for (int64_t n = 31; n <= 32; ++n) host.mutate("poison.made", payload(n));
  BOOST_TEST_REQUIRE(host.pending().value_or(-1) == 32);  // all stored before the first read (see above)
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(30s).value_or(-1) == 0);
  BOOST_TEST(delivered_ids(dir.path(), "delivered.log").size() == 30u);
  BOOST_TEST(stat(host, "delivered") == 30);
  BOOST_TEST(stat(host, "dead_lettered") == 2);
  BOOST_TEST(stat_text(host, "last_error").find("backoff.max_ms") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(verdict_per_row_answers_an_api_1_1_caller_with_the_older_kinds) {
  const uint8_t mixed_retry[] = {WEP_ROW_DELIVERED, WEP_ROW_RETRY_LATER, WEP_ROW_DELIVERED};
  const uint8_t mixed_reject[] = {WEP_ROW_DELIVERED, WEP_ROW_REJECTED, WEP_ROW_RETRY_LATER};
  const uint8_t all_done[] = {WEP_ROW_DELIVERED, WEP_ROW_DELIVERED, WEP_ROW_DELIVERED};
  {
    RawVerdict old_caller(false);
    wep::Verdict(&old_caller.raw, 3).per_row(mixed_retry, "one not acknowledged");
    BOOST_TEST(old_caller.raw.kind == WEP_VERDICT_RETRY_LATER);
    BOOST_TEST(old_caller.reason == "one not acknowledged");
  }
  {
    RawVerdict old_caller(false);
    wep::Verdict(&old_caller.raw, 3).per_row(mixed_reject, "one refused");
    BOOST_TEST(old_caller.raw.kind == WEP_VERDICT_REJECTED);
    BOOST_TEST(old_caller.flags == (std::vector<uint8_t>{0, 1, 0}), boost::test_tools::per_element());
  }
  {
    RawVerdict old_caller(false);
    wep::Verdict(&old_caller.raw, 3).per_row(all_done, "");
    BOOST_TEST(old_caller.raw.kind == WEP_VERDICT_DELIVERED);
  }
  {
    RawVerdict new_caller(true);
    wep::Verdict(&new_caller.raw, 3).per_row(mixed_reject, "mixed");
    BOOST_TEST(new_caller.raw.kind == WEP_VERDICT_PER_ROW);
    BOOST_TEST(new_caller.flags == (std::vector<uint8_t>{WEP_ROW_DELIVERED, WEP_ROW_REJECTED, WEP_ROW_RETRY_LATER}),
               boost::test_tools::per_element());
  }
}
