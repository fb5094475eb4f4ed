#include "nats_config.hpp"

#include <rapidjson/document.h>

#include <filesystem>
#include <fstream>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "nats_config_schema.h"

namespace wep::nats {
namespace {

[[noreturn]] void refuse(const std::string& key, const std::string& why) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "nats config: key '" + key + "': " + why);
}

// A readable regular file, resolved against the data directory.
std::string readable_file(const rapidjson::Document& json, const char* key, std::string_view data_dir) {
  std::filesystem::path path = json[key].GetString();
  if (path.is_relative()) path = std::filesystem::path(std::string(data_dir)) / path;
  std::error_code ec;
  std::ifstream probe(path);
  if (!probe || std::filesystem::is_directory(path, ec)) refuse(key, "cannot read the file '" + path.string() + "'");
  return path.string();
}

std::string string_or_empty(const rapidjson::Document& json, const char* key) {
  return json.HasMember(key) ? json[key].GetString() : std::string();
}

}  // namespace

std::string NatsConfig::describe() const {
  std::string text = std::to_string(servers.size()) + " server(s) ";
  for (size_t i = 0; i < servers.size(); ++i) text += (i ? ", " : "") + servers[i];
  text += "; subject " + subject;
  text += stream.empty() ? "; stream not named" : "; stream " + stream;
  if (tls) {
    text += ca_file.empty() ? "; TLS (system CA store" : "; TLS (CA file " + ca_file;
    text += tls_server_name.empty() ? ")" : ", server name " + tls_server_name + ")";
  } else {
    text += "; TLS only if the server requires it";
  }
  if (!creds_file.empty()) {
    text += "; auth credentials file";
  } else if (!nkey_seed_file.empty()) {
    text += "; auth NKey " + nkey;
  } else if (!user.empty()) {
    text += "; auth user/password (user " + user + ")";
  } else {
    text += "; no auth";
  }
  if (!inbox_prefix.empty()) text += "; inbox prefix " + inbox_prefix;
  return text;
}

NatsConfig read_nats_config(std::string_view config_json, std::string_view data_dir) {
  rapidjson::Document json;
  wep::transport::parse_config("nats", config_json, nats_config_schema, json);

  NatsConfig config;
  for (const auto& server : json["servers"].GetArray()) {
    std::string url = server.GetString();
    if (url.size() >= 6 && (url[0] == 't' || url[0] == 'T')) config.tls = true;
    config.servers.push_back(std::move(url));
  }
  config.subject = json["subject"].GetString();
  config.stream = string_or_empty(json, "stream");
  if (json.HasMember("timeout_ms")) config.timeout_ms = json["timeout_ms"].GetUint();

  const bool has_creds = json.HasMember("creds_file");
  const bool has_nkey = json.HasMember("nkey_seed_file") || json.HasMember("nkey");
  const bool has_user = json.HasMember("user") || json.HasMember("password");
  if (has_creds + has_nkey + has_user > 1) {
    refuse(has_creds ? "creds_file" : "nkey_seed_file",
           "use one form of credentials: creds_file, nkey + nkey_seed_file, or user + password");
  }
  if (has_creds) config.creds_file = readable_file(json, "creds_file", data_dir);
  if (has_nkey) {
    if (!json.HasMember("nkey")) refuse("nkey", "required with nkey_seed_file (the user's public key, U...)");
    if (!json.HasMember("nkey_seed_file")) refuse("nkey_seed_file", "required with nkey");
    config.nkey = json["nkey"].GetString();
    config.nkey_seed_file = readable_file(json, "nkey_seed_file", data_dir);
  }
  if (has_user) {
    if (!json.HasMember("user")) refuse("user", "required with password");
    if (!json.HasMember("password")) refuse("password", "required with user");
    config.user = json["user"].GetString();
    config.password = json["password"].GetString();
  }
  if (json.HasMember("ca_file")) {
    config.ca_file = readable_file(json, "ca_file", data_dir);
    config.tls = true;
  }
  config.tls_server_name = string_or_empty(json, "tls_server_name");
  if (!config.tls_server_name.empty() && !config.tls) {
    refuse("tls_server_name", "needs TLS: use tls:// URLs or set ca_file");
  }
  config.inbox_prefix = string_or_empty(json, "inbox_prefix");
  return config;
}

}  // namespace wep::nats
