// The host-stub config file: JSON validated against
// schemas/host_stub_config.schema.json (embedded at build time).
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <wep/host_stub/host.hpp>
#include <sstream>
#include <wep/support/json_config.hpp>

#include "host_stub_config_schema.h"

namespace wep::host_stub {
namespace {

std::string serialise(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

HostOptions parse_config(std::string_view json_text, const std::filesystem::path& base_dir) {
  rapidjson::Document document;
  if (auto refusal = wep::json_config::parse_and_validate(json_text, host_stub_config_schema, document)) {
    throw HostError("config: " + refusal->message());
  }

  auto resolve = [&](const rapidjson::Value& value) {
    std::filesystem::path path(std::string(value.GetString(), value.GetStringLength()));
    return path.is_absolute() ? path : (base_dir / path).lexically_normal();
  };

  HostOptions options;
  options.data_dir = resolve(document["data_dir"]);
  if (document.HasMember("settings")) {
    for (const auto& member : document["settings"].GetObject()) {
      options.initial_settings_json[std::string(member.name.GetString(), member.name.GetStringLength())] =
          serialise(member.value);
    }
  }
  if (document.HasMember("plugins")) {
    for (const auto& entry : document["plugins"].GetArray()) {
      PluginSpec spec;
      spec.path = resolve(entry["path"]).string();
      if (entry.HasMember("config")) spec.config_json = serialise(entry["config"]);
      options.plugins.push_back(std::move(spec));
    }
  }
  if (document.HasMember("lane_capacity")) options.lane_capacity = document["lane_capacity"].GetUint64();
  if (document.HasMember("plugin_stop_timeout_ms"))
    options.plugin_stop_timeout_ms = document["plugin_stop_timeout_ms"].GetUint();
  return options;
}

HostOptions load_config_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw HostError("config: cannot read '" + file.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw HostError("config: cannot read '" + file.string() + "'");
  const auto base_dir = std::filesystem::absolute(file).parent_path();
  return parse_config(text.str(), base_dir);
}

}  // namespace wep::host_stub
