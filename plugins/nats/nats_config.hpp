// The nats transport's config (schemas/nats_config.schema.json), read and
// checked at start. Secrets (password, the contents of credential files)
// live here and are never logged; describe() names only the forms in use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wep::nats {

struct NatsConfig {
  std::vector<std::string> servers;  // nats:// or tls:// URLs, in the given order
  std::string subject;
  std::string stream;  // empty: not checked, not demanded per publish
  uint32_t timeout_ms = 5000;
  // Credentials: at most one form. File paths are absolute.
  std::string creds_file;
  std::string nkey;  // public key, with nkey_seed_file
  std::string nkey_seed_file;
  std::string user;
  std::string password;  // never logged
  // TLS: on when a URL is tls:// or ca_file is set (nats:// URLs also switch
  // to TLS when the server requires it).
  bool tls = false;
  std::string ca_file;  // absolute; empty: the system CA store
  std::string tls_server_name;
  std::string inbox_prefix;

  // "3 server(s) nats://a:4222, ...; subject events.app; stream EVENTS; TLS
  // (CA file /x/ca.pem); auth user/password": no secret in it.
  std::string describe() const;
};

// Parses and validates `config_json`; relative files are resolved against
// `data_dir` and must be readable. Throws wep::Error(WEP_ERR_INVALID_ARGUMENT)
// with "nats config: key '<key>': <why>".
NatsConfig read_nats_config(std::string_view config_json, std::string_view data_dir);

}  // namespace wep::nats
