// The host-stub config file: JSON validated against
// schemas/host_stub_config.schema.json (embedded at build time).
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <host_stub/host.hpp>
#include <memory>
#include <sstream>

#include "host_stub_config_schema.h"

namespace host_stub {
namespace {

std::string serialise(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string pointer_text(const rapidjson::Pointer& pointer) {
  rapidjson::StringBuffer buffer;
  pointer.Stringify(buffer);
  std::string text(buffer.GetString(), buffer.GetSize());
  return text;
}

std::string join_key(const std::string& object_pointer, std::string_view key) {
  // JSON Pointer escaping of the key: '~' -> "~0", '/' -> "~1".
  std::string escaped;
  for (char c : key) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return object_pointer + "/" + escaped;
}

const char* type_name(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "boolean";
    case rapidjson::kObjectType:
      return "object";
    case rapidjson::kArrayType:
      return "array";
    case rapidjson::kStringType:
      return "string";
    case rapidjson::kNumberType:
      return value.IsInt64() || value.IsUint64() ? "integer" : "number";
  }
  return "value";
}

// Turns RapidJSON 1.1's validator outcome (keyword + schema and document
// pointers) into "config: <pointer of the wrong key>: <what is wrong>".
std::string describe_schema_error(const rapidjson::SchemaValidator& validator, const rapidjson::Document& schema,
                                  const rapidjson::Document& document) {
  const std::string keyword = validator.GetInvalidSchemaKeyword();
  std::string where = pointer_text(validator.GetInvalidDocumentPointer());
  const rapidjson::Value* rule = validator.GetInvalidSchemaPointer().Get(schema);
  const rapidjson::Value* instance = validator.GetInvalidDocumentPointer().Get(document);
  std::string what;

  if (keyword == "required" && rule && instance && instance->IsObject() && rule->HasMember("required")) {
    for (const auto& key : (*rule)["required"].GetArray()) {
      if (!instance->HasMember(key)) {
        where = join_key(where, std::string_view(key.GetString(), key.GetStringLength()));
        what = "required key missing";
        break;
      }
    }
  } else if (keyword == "additionalProperties") {
    // RapidJSON 1.1 points at the disallowed member itself; should a version
    // point at the object instead, find the first unknown key there.
    what = "unknown key";
    if (rule && instance && instance->IsObject()) {
      const rapidjson::Value* known = rule->HasMember("properties") ? &(*rule)["properties"] : nullptr;
      for (const auto& member : instance->GetObject()) {
        if (!known || !known->HasMember(member.name)) {
          where = join_key(where, std::string_view(member.name.GetString(), member.name.GetStringLength()));
          break;
        }
      }
    }
  } else if (keyword == "type" && rule && rule->HasMember("type") && (*rule)["type"].IsString()) {
    what = std::string("expected ") + (*rule)["type"].GetString();
    if (instance) what += ", got " + std::string(type_name(*instance));
  } else if (keyword == "minimum" && rule && rule->HasMember("minimum")) {
    what = "must be >= " + serialise((*rule)["minimum"]);
  } else if (keyword == "maximum" && rule && rule->HasMember("maximum")) {
    what = "must be <= " + serialise((*rule)["maximum"]);
  } else if (keyword == "minLength") {
    what = "must not be empty";
  }
  if (what.empty()) what = "violates the schema keyword '" + keyword + "'";
  if (where.empty()) where = "/";
  return "config: " + where + ": " + what;
}

// The embedded schema, parsed once per process. Lives in the host library
// (never in a plugin), so a function-local static is fine here. Read-only
// after construction, so validators on several threads may share it.
struct ConfigSchema {
  rapidjson::Document json;
  std::unique_ptr<rapidjson::SchemaDocument> schema;

  ConfigSchema() {
    json.Parse(host_stub_config_schema);
    if (json.HasParseError()) throw HostError("host-stub: the embedded config schema is not valid JSON");
    schema = std::make_unique<rapidjson::SchemaDocument>(json);
  }
};

const ConfigSchema& config_schema() {
  static const ConfigSchema schema;
  return schema;
}

}  // namespace

HostOptions parse_config(std::string_view json_text, const std::filesystem::path& base_dir) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseValidateEncodingFlag>(json_text.data(), json_text.size());
  if (document.HasParseError()) {
    throw HostError("config: invalid JSON at offset " + std::to_string(document.GetErrorOffset()) + ": " +
                    rapidjson::GetParseError_En(document.GetParseError()));
  }
  const ConfigSchema& schema = config_schema();
  rapidjson::SchemaValidator validator(*schema.schema);
  if (!document.Accept(validator)) throw HostError(describe_schema_error(validator, schema.json, document));

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

}  // namespace host_stub
