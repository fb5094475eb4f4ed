#include "supabase_config.hpp"

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>
#include <Poco/String.h>
#include <Poco/URI.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <wep/plugin.hpp>
#include <wep/support/http_text.hpp>
#include <wep/support/transport_json.hpp>

#include "supabase_config_schema.h"

namespace wep::supabase {
namespace {

[[noreturn]] void refuse(const std::string& what) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "supabase config: " + what);
}

// The JSON payload of a JWT (header.payload.signature, base64url), or empty
// when `token` is not shaped like one.
std::string jwt_payload(std::string_view token) {
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) return {};
  std::string encoded(token.substr(first + 1, second - first - 1));
  if (encoded.empty() || encoded.find_first_not_of(
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos)
    return {};
  while (encoded.size() % 4 != 0) encoded.push_back('=');
  std::istringstream in(encoded);
  Poco::Base64Decoder decoder(in, Poco::BASE64_URL_ENCODING);
  std::string payload;
  try {
    payload.assign(std::istreambuf_iterator<char>(decoder), std::istreambuf_iterator<char>());
  } catch (const Poco::Exception&) {
    return {};
  }
  return payload;
}

}  // namespace

KeyKind classify_api_key(std::string_view api_key) {
  if (api_key.rfind("sb_secret_", 0) == 0) {
    refuse(
        "key 'api_key' is a secret key (sb_secret_...): it bypasses row-level security and must never ship in an "
        "application; use the project's publishable key (sb_publishable_...)");
  }
  if (api_key.rfind("eyJ", 0) != 0) return KeyKind::kOpaque;  // every JWT starts with {" in base64url
  const std::string payload = jwt_payload(api_key);
  rapidjson::Document claims;
  claims.Parse(payload.data(), payload.size());
  if (payload.empty() || claims.HasParseError() || !claims.IsObject())
    refuse("key 'api_key' looks like a JWT but is not one (check that it was copied whole)");
  if (claims.HasMember("role") && claims["role"].IsString() &&
      std::string_view(claims["role"].GetString()) == "service_role") {
    refuse(
        "key 'api_key' is the service_role key: it bypasses row-level security and must never ship in an "
        "application; use the project's publishable key (sb_publishable_...) or its anon key");
  }
  return KeyKind::kJwt;
}

SupabaseConfig read_supabase_config(std::string_view config_json, std::string_view data_dir) {
  rapidjson::Document json;
  wep::transport::parse_config("supabase", config_json, supabase_config_schema, json);
  for (auto member = json.MemberBegin(); member != json.MemberEnd(); ++member) {
    if (member->value.IsString() &&
        wep::transport::has_control_characters({member->value.GetString(), member->value.GetStringLength()}))
      refuse("key '" + std::string(member->name.GetString()) + "' contains a control character");
  }

  SupabaseConfig config;
  config.api_key = json["api_key"].GetString();
  config.key_kind = classify_api_key(config.api_key);
  if (json.HasMember("table")) config.table = json["table"].GetString();
  if (json.HasMember("timeout_ms")) config.timeout_ms = json["timeout_ms"].GetUint();
  if (json.HasMember("ca_file")) {
    std::filesystem::path ca = json["ca_file"].GetString();
    if (ca.is_relative()) ca = std::filesystem::path(std::string(data_dir)) / ca;
    std::ifstream probe(ca);
    if (!probe || std::filesystem::is_directory(ca))
      refuse("key 'ca_file': cannot read the file '" + ca.string() + "'");
    config.ca_file = ca.string();
  }

  const std::string url = json["url"].GetString();
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception& e) {
    refuse("key 'url' is not a valid URL: " + e.displayText());
  }
  const std::string scheme = Poco::toLower(uri.getScheme());
  if (scheme != "https" && scheme != "http") refuse("key 'url' must start with https://");
  if (uri.getHost().empty()) refuse("key 'url' has no host");
  if (!uri.getUserInfo().empty()) refuse("key 'url' must not carry user info");
  if (!uri.getRawQuery().empty() || !uri.getFragment().empty() || url.find_first_of("?#") != std::string::npos)
    refuse("key 'url' must not have a query or fragment");
  config.https = scheme == "https";
  config.host = uri.getHost();
  if (!config.https && !wep::transport::is_loopback_host(config.host)) {
    refuse("key 'url': plain http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://");
  }
  config.port = uri.getPort();
  const bool default_port = config.port == (config.https ? 443 : 80);
  const std::string bracketed = config.host.find(':') != std::string::npos ? "[" + config.host + "]" : config.host;
  config.host_header = default_port ? bracketed : bracketed + ":" + std::to_string(config.port);

  // The path exactly as written (after scheme://authority): Poco's getPath()
  // would decode %0D%0A, %3F or %23 into the request line.
  const size_t authority = url.find("://") + 3;
  const size_t path_start = url.find('/', authority);
  std::string prefix = path_start == std::string::npos ? std::string() : url.substr(path_start);
  if (!wep::transport::is_wire_safe_url_path(prefix))
    refuse("key 'url': the path may hold only URL path characters and %XX escapes");
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  config.target = prefix + "/rest/v1/" + config.table + "?on_conflict=event_id";
  config.display_url = scheme + "://" + config.host_header + prefix + "/rest/v1/" + config.table;
  return config;
}

}  // namespace wep::supabase
