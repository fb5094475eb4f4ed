// Config validation shared by the host stub, the analytics plugin and the
// transports (library wep::json_config): parse JSON, validate it against a
// draft-04 JSON Schema with RapidJSON 1.1's SchemaValidator, and say in words
// which key is wrong and why. Linked into plugins, so it holds no state.
#pragma once

#include <rapidjson/fwd.h>

#include <optional>
#include <string>
#include <string_view>

namespace wep::json_config {

// Why a config was refused.
struct Refusal {
  // RFC 6901 pointer of the offending key: for an unknown or a missing key,
  // the pointer of that key itself. Empty: the document as a whole (not JSON,
  // or not the top-level type the schema asks for).
  std::string pointer;
  // E.g. "unknown key", "required key missing", "expected a string, got an
  // integer", "must be >= 1", "must not be empty", "not valid JSON (offset 3): ...".
  std::string reason;

  // "<pointer>: <reason>", with "/" standing for the whole document.
  std::string message() const;
};

// Parses `json` into `out` (invalid UTF-8 is a parse error) and validates it
// against the JSON Schema text `schema_json`. Returns std::nullopt when `json`
// is valid; otherwise the refusal, and `out` holds whatever was parsed.
// Throws std::invalid_argument if `schema_json` itself is not JSON.
// Thread-safe (no shared state).
std::optional<Refusal> parse_and_validate(std::string_view json, std::string_view schema_json,
                                          rapidjson::Document& out);

}  // namespace wep::json_config
