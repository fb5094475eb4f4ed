// libFuzzer target: the analytics event mapper with its PII screen. The
// input is a mutation payload as a host hands it over; the mapper must map
// or drop it (counted) and never keep a value the screen refuses. The same
// bytes go through the screen as a string and (their first 8 bytes) as an
// integer.
#include <rapidjson/document.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "config.hpp"
#include "event_mapper.hpp"
#include "pii_screen.hpp"
#include "stats.hpp"

namespace {

const wep::analytics::AnalyticsConfig& config() {
  static const wep::analytics::AnalyticsConfig instance = wep::analytics::parse_config(
      R"({"events": {"x": {"event_type": "x", "properties": ["a", "b", "c", "email", "n", "id"]}}})", "/data");
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wep::analytics::Stats stats;
  static wep::analytics::EventMapper mapper(config(), std::string("pseudo"), stats);
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  wep::analytics::NewRow row;
  if (mapper.map("x", payload, 1'795'168'800'123, row) && row.properties_json) {
    // Every kept string passed the screen: check it again on the output.
    rapidjson::Document kept;
    kept.Parse(row.properties_json->data(), row.properties_json->size());  // our own output: 1 level deep
    if (kept.HasParseError() || !kept.IsObject()) __builtin_trap();
    for (const auto& member : kept.GetObject()) {
      if (member.value.IsString() &&
          wep::analytics::classify_pii({member.value.GetString(), member.value.GetStringLength()}) !=
              wep::analytics::PiiKind::none)
        __builtin_trap();
      if (member.value.IsObject() || member.value.IsArray()) __builtin_trap();
    }
  }
  if (size <= 256) (void)wep::analytics::classify_pii(payload);
  uint64_t number = 0;
  std::memcpy(&number, data, size < sizeof number ? size : sizeof number);
  (void)wep::analytics::classify_pii_integer(number);
  return 0;
}
