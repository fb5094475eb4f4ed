// The PII screen (plugins/analytics/pii_screen.hpp) as a table: every rule
// with the values it must catch (positives), the look-alikes it must keep
// (negatives), and the false positives the README accepts; then the same
// screen applied to numbers and through the event mapper.
#define BOOST_TEST_MODULE pii_screen
#include "pii_screen.hpp"

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "config.hpp"
#include "event_mapper.hpp"
#include "stats.hpp"

using namespace wep::analytics;

namespace {

const char* name_of(PiiKind kind) {
  switch (kind) {
    case PiiKind::none:
      return "none";
    case PiiKind::email:
      return "email";
    case PiiKind::phone:
      return "phone";
    case PiiKind::ip_address:
      return "ip_address";
    case PiiKind::url:
      return "url";
    case PiiKind::long_number:
      return "long_number";
    case PiiKind::mac_address:
      return "mac_address";
    case PiiKind::secret:
      return "secret";
    case PiiKind::card_number:
      return "card_number";
  }
  return "?";
}

struct Case {
  std::string text;
  PiiKind kind;
};

void check_strings(const std::vector<Case>& cases) {
  for (const auto& [text, kind] : cases) {
    BOOST_TEST_INFO("value: \"" << text << "\"");
    BOOST_TEST(name_of(classify_pii(text)) == name_of(kind));
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(emails_with_trailing_punctuation_idn_single_labels_and_other_scripts) {
  check_strings({
      {"bob@example.com", PiiKind::email},
      {"bob@example.com.", PiiKind::email},
      {"bob@example.com,", PiiKind::email},
      {"(bob@example.com)", PiiKind::email},
      {"bob@example.com-", PiiKind::email},
      {"user@exämple.de", PiiKind::email},
      {"user@bücher.example", PiiKind::email},
      {"josé@example.com", PiiKind::email},
      {"用户@例子.广告", PiiKind::email},
      {"user@пример.рф", PiiKind::email},
      {"user@example。com", PiiKind::email},  // ideographic full stop
      {"user＠example.com", PiiKind::email},  // full-width @
      {"root@localhost", PiiKind::email},
      {"admin@intranet", PiiKind::email},
      {"mailto:bob@example", PiiKind::email},
      {"o'brien@example.ie", PiiKind::email},
  });
}

BOOST_AUTO_TEST_CASE(urls_with_schemes_ports_paths_and_no_scheme) {
  check_strings({
      {"https://example.com", PiiKind::url},
      {"HTTP://EXAMPLE.COM/X", PiiKind::url},
      {"example.com/reset?token=abc", PiiKind::url},
      {"//example.com/x", PiiKind::url},
      {"example.com:8443", PiiKind::url},
      {"localhost:8080", PiiKind::url},
      {"bücher.de/katalog", PiiKind::url},
      {"shop.example.co.uk?ref=mail", PiiKind::url},
      {"www.example.org", PiiKind::url},
      {"tel:+15551234567", PiiKind::url},
      {"mailto:someone", PiiKind::url},
      {"sip:alice", PiiKind::url},
      {"example.com#section", PiiKind::url},
  });
}

BOOST_AUTO_TEST_CASE(ip_addresses_with_ports_prefixes_and_brackets) {
  check_strings({
      {"10.0.0.1", PiiKind::ip_address},
      {"10.0.0.1:8080", PiiKind::ip_address},
      {"host:1.2.3.4", PiiKind::ip_address},
      {"ip=192.168.0.10;", PiiKind::ip_address},
      {"from 10.0.0.1.", PiiKind::ip_address},
      {"[::1]:8080", PiiKind::ip_address},
      {"fe80::1%eth0", PiiKind::ip_address},
      {"2001:db8::ff00:42:8329", PiiKind::ip_address},
      {"１０.０.０.１", PiiKind::ip_address},  // full-width digits
  });
}

BOOST_AUTO_TEST_CASE(mac_addresses_in_three_notations) {
  check_strings({
      {"00:1A:2B:3C:4D:5E", PiiKind::mac_address},
      {"00-1a-2b-3c-4d-5e", PiiKind::mac_address},
      {"001a.2b3c.4d5e", PiiKind::mac_address},
      {"mac=aa:bb:cc:dd:ee:ff", PiiKind::mac_address},
  });
}

BOOST_AUTO_TEST_CASE(phone_numbers_with_any_separator_and_script) {
  check_strings({
      {"555-123-4567", PiiKind::phone},
      {"555/123/4567", PiiKind::phone},
      {"555–123–4567", PiiKind::phone},  // en dash
      {"555—123—4567", PiiKind::phone},  // em dash
      {"555‑123‑4567", PiiKind::phone},  // non-breaking hyphen
      {"555 123 4567", PiiKind::phone},  // no-break spaces
      {"555.123.4567", PiiKind::phone},
      {"(555) 123-4567", PiiKind::phone},
      {"+1 555 123 4567", PiiKind::phone},
      {"+4915112345678", PiiKind::phone},
      {"٥٥٥-١٢٣-٤٥٦٧", PiiKind::phone},              // Arabic-Indic digits
      {"५५५-१२३-४५६७", PiiKind::phone},              // Devanagari digits
      {"５５５－１２３－４５６７", PiiKind::phone},  // full-width
      {"call 030 1234567", PiiKind::phone},
      {"4111111111111111", PiiKind::long_number},
      {"15551234567", PiiKind::long_number},
      {"4111 1111 1111 1111 1", PiiKind::long_number},
  });
}

BOOST_AUTO_TEST_CASE(secrets_bearer_tokens_jwts_key_prefixes_and_high_entropy_tokens) {
  check_strings({
      {"Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", PiiKind::secret},
      {"bearer abcdefgh12", PiiKind::secret},
      {"Authorization: Basic dXNlcjpwYXNz", PiiKind::secret},
      {"sk_live_4eC39HqLyjWD", PiiKind::secret},
      {"ghp_abcdefghij0123456789", PiiKind::secret},
      {"xoxb-123456789012-abcdef", PiiKind::secret},
      {"AKIAIOSFODNN7EXAMPLE", PiiKind::secret},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", PiiKind::secret},
      {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIi", PiiKind::secret},
      {"9f86d081884c7d659a2feaa0c55ad015", PiiKind::secret},  // hex digest
      {"Zx8Kq2Lm9Pv4Rt7Wn3Bc", PiiKind::secret},              // 20 mixed characters
  });
}

BOOST_AUTO_TEST_CASE(look_alikes_that_are_kept) {
  check_strings({
      {"text", PiiKind::none},
      {"note_created", PiiKind::none},
      {"note.created", PiiKind::none},
      {"toolbar.button", PiiKind::none},
      {"v1.2.3", PiiKind::none},
      {"12:30", PiiKind::none},
      {"10:00:00", PiiKind::none},
      {"16:9", PiiKind::none},
      {"dead::beef", PiiKind::none},
      {"123456", PiiKind::none},
      {"a@b", PiiKind::none},
      {"@handle", PiiKind::none},
      {"icon@2x", PiiKind::none},
      {"3.5/10", PiiKind::none},
      {"a/b/c", PiiKind::none},
      {"ratio 1:2", PiiKind::none},
      {"feature_flag_new_editor_enabled", PiiKind::none},
      {"toolbar_button_v2_experiment", PiiKind::none},
      {"bearer", PiiKind::none},
      {"Bearer token", PiiKind::none},
      {"café", PiiKind::none},
      {"日本語のテキスト", PiiKind::none},
      {"€ 12,50", PiiKind::none},
      {"sk_live_", PiiKind::none},
      {"ab:cd:ef", PiiKind::none},
      {"", PiiKind::none},
  });
}

BOOST_AUTO_TEST_CASE(accepted_false_positives_uuids_dates_and_version_quads) {
  // Listed in the README: dropped although harmless.
  check_strings({
      {"550e8400-e29b-41d4-a716-446655440000", PiiKind::phone},  // a UUID
      {"2026-11-20", PiiKind::phone},                            // a date
      {"2026/11/20", PiiKind::phone},
      {"1.2.3.4", PiiKind::ip_address},  // a four-part version
      {"10.0.19041", PiiKind::phone},    // a version with 7 or more digits
      {"app.settings/open", PiiKind::url},
  });
}

BOOST_AUTO_TEST_CASE(malformed_utf8_is_screened_without_reading_past_the_end) {
  check_strings({
      {std::string("\xC3"), PiiKind::none},
      {std::string("\xE2\x80"), PiiKind::none},
      {std::string("bob@ex\xFF"
                   "ample.com"),
       PiiKind::email},
      {std::string("555\xE2\x80\x93"
                   "123\xE2\x80\x93"
                   "4567"),
       PiiKind::phone},
  });
}

BOOST_AUTO_TEST_CASE(integers_card_numbers_by_luhn_and_phone_lengths) {
  struct NumberCase {
    uint64_t magnitude;
    PiiKind kind;
  };
  const std::vector<NumberCase> cases = {
      {4111111111111111ULL, PiiKind::card_number},  // Visa test number, Luhn-valid
      {5500005555555559ULL, PiiKind::card_number},  // Mastercard
      {378282246310005ULL, PiiKind::card_number},   // Amex, 15 digits
      {6011111111111117ULL, PiiKind::card_number},  // Discover
      {2223000048400011ULL, PiiKind::card_number},  // Mastercard 2-series
      {4222222222222ULL, PiiKind::card_number},     // Visa, 13 digits
      {15551234567ULL, PiiKind::phone},             // E.164 without '+'
      {491511234567ULL, PiiKind::phone},            // 12 digits
      {5551234567ULL, PiiKind::phone},              // NANP national
      {4111111111111112ULL, PiiKind::none},         // card-like but Luhn-invalid, 16 digits
      {1764633600000ULL, PiiKind::none},            // Unix time in ms
      {1764633600ULL, PiiKind::none},               // Unix time in s
      {1764633600000000ULL, PiiKind::none},         // Unix time in us
      {42, PiiKind::none},
      {1234567, PiiKind::none},
      {123456789, PiiKind::none},
      {0, PiiKind::none},
      {18446744073709551615ULL, PiiKind::none},  // 20 digits
  };
  for (const auto& [magnitude, kind] : cases) {
    BOOST_TEST_INFO("number: " << magnitude);
    BOOST_TEST(name_of(classify_pii_integer(magnitude)) == name_of(kind));
  }
}

BOOST_AUTO_TEST_CASE(the_mapper_screens_numbers_strings_and_counts_each_kind) {
  const AnalyticsConfig config = parse_config(R"({"events": {
      "note.created": {"event_type": "note_created",
                       "properties": ["card", "phone", "negative", "as_double", "timestamp", "size", "ratio",
                                      "mac", "secret", "email", "url"]}}})",
                                              "/data");
  Stats stats;
  EventMapper mapper(config, std::nullopt, stats);
  NewRow out;
  const std::string payload = R"({"card": 4111111111111111, "phone": 15551234567, "negative": -4111111111111111,
      "as_double": 15551234567.0, "timestamp": 1764633600000, "size": 1048576, "ratio": 0.25,
      "mac": "00:1A:2B:3C:4D:5E", "secret": "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc",
      "email": "bob@example.com.", "url": "example.com/reset?token=abc"})";
  BOOST_REQUIRE(mapper.map("note.created", payload, 1000, out));
  BOOST_TEST(*out.properties_json == R"({"timestamp":1764633600000,"size":1048576,"ratio":0.25})");
  BOOST_TEST(stats.properties_dropped_pii == 8);
  BOOST_TEST(stats.pii_long_number == 2);  // the two card numbers
  BOOST_TEST(stats.pii_phone == 2);
  BOOST_TEST(stats.pii_ip == 1);  // the MAC address
  BOOST_TEST(stats.pii_secret == 1);
  BOOST_TEST(stats.pii_email == 1);
  BOOST_TEST(stats.pii_url == 1);
}
