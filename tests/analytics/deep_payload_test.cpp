// Payloads, rows and configs nested far deeper than any real document, as a
// host application (or a damaged queue) may hand them to the analytics
// plugin and the transports: refused with a reason and counted, never a
// stack overflow in the host's process.
#define BOOST_TEST_MODULE analytics_deep_payload
#include <rapidjson/document.h>
#include <wep/plugin_api.h>

#include <boost/test/unit_test.hpp>
#include <string>
#include <wep/support/bounded_json.hpp>
#include <wep/support/json_config.hpp>
#include <wep/support/transport_json.hpp>

#include "config.hpp"
#include "event_mapper.hpp"
#include "stats.hpp"

using namespace wep::analytics;

namespace {

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + "0" + std::string(depth, ']'); }
std::string object_around(size_t depth) { return "{\"a\":" + nested_arrays(depth - 1) + "}"; }

AnalyticsConfig mapping_of_a() {
  return parse_config(R"({"events": {"x": {"event_type": "x", "properties": ["a", "b"]}}})", "/data");
}

wep_str view(const std::string& s) { return {s.data(), s.size()}; }

}  // namespace

BOOST_AUTO_TEST_CASE(the_mapper_drops_a_payload_nested_100000_deep_and_goes_on) {
  const AnalyticsConfig config = mapping_of_a();
  Stats stats;
  EventMapper mapper(config, std::nullopt, stats);
  NewRow row;
  for (const std::string& payload :
       {object_around(100'000), "{\"a\":" + std::string(300'000, '['), std::string(300'000, '{'), object_around(65)}) {
    BOOST_TEST(!mapper.map("x", payload, 1000, row));
  }
  BOOST_TEST(stats.dropped_invalid == 4);
  // At the limit the payload is parsed; the nested value is not a kept type.
  BOOST_TEST(mapper.map("x", object_around(64), 1000, row));
  BOOST_TEST(stats.properties_dropped_type == 1);
  BOOST_TEST(mapper.map("x", R"({"a": 1, "b": "kept"})", 1001, row));
  BOOST_TEST(*row.properties_json == R"({"a":1,"b":"kept"})");
}

BOOST_AUTO_TEST_CASE(the_row_encoder_refuses_deep_properties_with_a_reason) {
  wep::transport::RowEncoder encoder;
  const std::string id = "00000000-0000-4000-8000-000000000001", type = "x", user = "u",
                    created = "2026-11-20T10:00:00.000Z", deep = object_around(200'000);
  wep_row row{1, view(id), view(type), view(deep), view(user), view(created)};
  std::string out, why;
  BOOST_TEST(!encoder.append(row, out, why));
  BOOST_TEST(!why.empty());  // too large before it is too deep: refused either way, never parsed recursively
  const std::string deeper = object_around(40);  // over the server schema's nesting bound (32)
  row.properties_json = view(deeper);
  BOOST_TEST(!encoder.append(row, out, why));
  BOOST_TEST(why.find("deeper than 32 levels") != std::string::npos, why);
  const std::string shallow = object_around(16);
  row.properties_json = view(shallow);
  BOOST_TEST(encoder.append(row, out, why), why);
}

BOOST_AUTO_TEST_CASE(config_validation_refuses_a_deep_config_naming_the_depth) {
  rapidjson::Document out;
  const auto refusal = wep::json_config::parse_and_validate(object_around(150'000), R"({"type": "object"})", out);
  BOOST_REQUIRE(refusal.has_value());
  BOOST_TEST(refusal->message().find("nested deeper than 64 levels") != std::string::npos, refusal->message());
  BOOST_TEST(out.IsNull());
}

BOOST_AUTO_TEST_CASE(bounded_parse_reports_offset_and_keeps_ordinary_errors) {
  rapidjson::Document document;
  auto outcome = wep::json::parse_document(document, nested_arrays(65));
  BOOST_TEST(outcome.too_deep);
  BOOST_TEST(outcome.message().rfind("nested deeper than 64 levels at offset ", 0) == 0, outcome.message());
  outcome = wep::json::parse_document(document, "{\"a\":");
  BOOST_TEST(!outcome.ok());
  BOOST_TEST(!outcome.too_deep);
  BOOST_TEST(outcome.message().rfind("invalid JSON at offset 5: ", 0) == 0, outcome.message());
  outcome = wep::json::parse_document(document, nested_arrays(64));
  BOOST_TEST(outcome.ok());
  BOOST_TEST(document.IsArray());
}
