// The supabase transport's config: parsed, validated against
// schemas/supabase_config.schema.json and checked for what reaches the wire.
// Pure (no network); thread-safe.
//
// Refused at start, each naming the key:
//   - any string value with a control character (it could split a header or
//     the request line);
//   - a url other than https://, except http:// to a loopback host; a url
//     with user info, a query or a fragment, or a path that is not wire-safe
//     (the path is sent exactly as written, percent escapes kept);
//   - an api_key that is a secret key: "sb_secret_..." or a JWT whose role
//     claim is "service_role" (both bypass row-level security and must never
//     ship in an application), or a string that looks like a JWT but is not
//     one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wep::supabase {

constexpr uint32_t kDefaultTimeoutMs = 10000;
constexpr const char* kDefaultTable = "analytics_events";

// How the api_key is sent.
enum class KeyKind {
  kOpaque,  // e.g. a publishable key (sb_publishable_...): the apikey header only
  kJwt,     // a legacy anon JWT: apikey, and Authorization: Bearer
};

struct SupabaseConfig {
  bool https = true;
  std::string host;  // no brackets for IPv6
  uint16_t port = 443;
  std::string host_header;  // Host: value
  std::string target;       // {path prefix}/rest/v1/{table}?on_conflict=event_id, percent escapes kept
  std::string display_url;  // {url}/rest/v1/{table}, for messages
  std::string api_key;      // secret-ish: never logged, never in a reason
  KeyKind key_kind = KeyKind::kOpaque;
  std::string table = kDefaultTable;
  std::string ca_file;  // empty: the system CA store
  uint32_t timeout_ms = kDefaultTimeoutMs;
};

// Parses and checks `config_json`; a relative ca_file is resolved against
// `data_dir`. Throws wep::Error(WEP_ERR_INVALID_ARGUMENT) with a message that
// starts "supabase config: key '<key>'".
SupabaseConfig read_supabase_config(std::string_view config_json, std::string_view data_dir);

// What kind of key `api_key` is; throws wep::Error as above for a key that
// must not be used (see the top).
KeyKind classify_api_key(std::string_view api_key);

}  // namespace wep::supabase
