// libFuzzer target: config validation. The input is a config text checked
// against every schema the project ships (host stub, analytics, ndjson,
// supabase) by wep::json_config, then read by the analytics plugin's and the
// host stub's own config readers. Refusals are expected; crashes, hangs and
// escaping exceptions other than the documented ones are not.
#include <rapidjson/document.h>

#include <cstdint>
#include <wep/host_stub/host.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <wep/plugin.hpp>
#include <wep/support/json_config.hpp>

#include "analytics_config_schema.h"
#include "config.hpp"
#include "host_stub_config_schema.h"
#include "ndjson_config_schema.h"
#include "supabase_config_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* schema :
       {host_stub_config_schema, analytics_config_schema, ndjson_config_schema, supabase_config_schema}) {
    rapidjson::Document document;
    const auto refusal = wep::json_config::parse_and_validate(text, schema, document);
    if (refusal && refusal->message().empty()) __builtin_trap();
  }
  try {
    wep::analytics::parse_config(text, "/nonexistent/data", "/nonexistent/plugins");
  } catch (const wep::Error&) {
  }
  try {
    wep::host_stub::parse_config(text, "/nonexistent/base");
  } catch (const std::exception&) {
  }
  return 0;
}
