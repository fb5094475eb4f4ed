// JSON helpers shared by the transports (wep::transport_json): config
// validation against an embedded JSON Schema, and the one wire shape of a row.
// The Supabase body and the NDJSON lines use the same RowEncoder, so the
// row objects are identical by construction.
#pragma once

#include <rapidjson/fwd.h>
#include <wep/plugin_api.h>

#include <memory>
#include <string>
#include <string_view>

namespace wep::transport {

// Parses `config_json` into `config` and validates it against the draft-04
// JSON Schema `schema_json` (wep::json_config). Throws
// wep::Error(WEP_ERR_INVALID_ARGUMENT) with a message that starts with
// "<plugin> config:" and names the offending key, e.g.
// "supabase config: key 'timeout_ms': expected an integer, got a string".
void parse_config(std::string_view plugin, std::string_view config_json, const char* schema_json,
                  rapidjson::Document& config);

// What the server schema (schemas/analytics_events.postgres.sql) accepts, and
// so what RowEncoder lets through: a row it encodes is never refused by the
// schema's constraints or by PostgreSQL's jsonb/text input.
constexpr size_t kMaxPropertiesBytes = 12 * 1024;  // compact text; the schema bounds jsonb text at 16 KiB
constexpr int kMaxPropertiesDepth = 32;            // nesting of objects and arrays
constexpr size_t kMaxTextCharacters = 200;         // event_type (at least 1) and user_id
constexpr const char* kEarliestCreatedAt = "2000-01-01";
constexpr int64_t kMaxCreatedAtAheadMs = 24 * 3600 * 1000;  // created_at at most now + 1 day

// Encodes rows as compact JSON objects with exactly these keys, in order:
//   {"event_id": "...", "event_type": "...", "properties": {...} | null,
//    "user_id": "..." | null, "created_at": "..."}
// `properties` is the row's properties_json, checked to be one JSON object
// and embedded as that object (never a string holding JSON); empty
// properties_json or user_id map to null. Not thread-safe: one encoder per thread (it reuses its buffers).
class RowEncoder {
 public:
  RowEncoder();
  ~RowEncoder();
  RowEncoder(const RowEncoder&) = delete;
  RowEncoder& operator=(const RowEncoder&) = delete;

  // Appends the object for `row` to `out`. U+0000 (which jsonb and text
  // refuse) in any string, and in properties also escapes that decode to
  // invalid UTF-8 (lone surrogates), are replaced by U+FFFD. When the row
  // cannot be encoded (empty event_id, event_type or created_at; properties
  // that are not a JSON object, larger than kMaxPropertiesBytes or nested
  // deeper than kMaxPropertiesDepth; event_type or user_id longer than
  // kMaxTextCharacters; created_at before kEarliestCreatedAt or more than a
  // day ahead of this machine's clock; invalid UTF-8 in a text field) returns
  // false, leaves `out` unchanged and sets `why` to a reason that names the
  // row's event_id.
  bool append(const wep_row& row, std::string& out, std::string& why);

 private:
  bool write_row(const wep_row& row, std::string& out, std::string& why);

  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace wep::transport
