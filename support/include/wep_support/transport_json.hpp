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

  // Appends the object for `row` to `out`. When the row cannot be encoded
  // (empty event_id, event_type or created_at; properties that are not a JSON
  // object; invalid UTF-8) returns false, leaves `out` unchanged and sets
  // `why` to a reason that names the row's event_id.
  bool append(const wep_row& row, std::string& out, std::string& why);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace wep::transport
