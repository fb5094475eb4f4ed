#include "transport_json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <wep/plugin.hpp>

namespace wep::transport {

namespace {

[[noreturn]] void refuse(std::string_view plugin, const std::string& what) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, std::string(plugin) + " config: " + what);
}

std::string to_text(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return buffer.GetString();
}

// What the schema node at the failing keyword asks for, in words.
std::string requirement(const char* keyword, const rapidjson::Value* schema) {
  auto member = [&](const char* name) -> const rapidjson::Value* {
    if (!schema || !schema->IsObject()) return nullptr;
    auto it = schema->FindMember(name);
    return it == schema->MemberEnd() ? nullptr : &it->value;
  };
  const std::string k = keyword;
  if (k == "type") {
    const auto* type = member("type");
    return "must be of type " + (type ? to_text(*type) : std::string("?"));
  }
  if (k == "minimum" || k == "maximum") {
    const auto* bound = member(keyword);
    return std::string("must be ") + (k == "minimum" ? "at least " : "at most ") + (bound ? to_text(*bound) : "?");
  }
  if (k == "minLength")
    return "must not be shorter than " + (member("minLength") ? to_text(*member("minLength")) : "?");
  if (k == "maxLength") return "must not be longer than " + (member("maxLength") ? to_text(*member("maxLength")) : "?");
  if (k == "pattern")
    return "has an invalid format (expected " + (member("pattern") ? to_text(*member("pattern")) : "?") + ")";
  if (k == "enum") return "must be one of " + (member("enum") ? to_text(*member("enum")) : "?");
  return std::string("is invalid (schema keyword '") + keyword + "')";
}

}  // namespace

void parse_config(std::string_view plugin, std::string_view config_json, const char* schema_json,
                  rapidjson::Document& config) {
  rapidjson::Document schema_document;
  schema_document.Parse(schema_json);
  if (schema_document.HasParseError())
    throw wep::Error(WEP_ERR_FAILED, std::string(plugin) + ": the embedded config schema is not valid JSON");

  config.Parse(config_json.data(), config_json.size());
  if (config.HasParseError())
    refuse(plugin, std::string("not valid JSON at offset ") + std::to_string(config.GetErrorOffset()) + ": " +
                       rapidjson::GetParseError_En(config.GetParseError()));
  if (!config.IsObject()) refuse(plugin, "must be a JSON object");

  // Unknown and missing keys first: the validator reports both at the root
  // without naming the key.
  const auto& properties = schema_document["properties"];
  for (const auto& entry : config.GetObject()) {
    if (!properties.HasMember(entry.name)) refuse(plugin, std::string("unknown key '") + entry.name.GetString() + "'");
  }
  if (schema_document.HasMember("required")) {
    for (const auto& key : schema_document["required"].GetArray()) {
      if (!config.HasMember(key)) refuse(plugin, std::string("key '") + key.GetString() + "' is required");
    }
  }

  rapidjson::SchemaDocument schema(schema_document);
  rapidjson::SchemaValidator validator(schema);
  if (config.Accept(validator)) return;

  rapidjson::StringBuffer where;
  validator.GetInvalidDocumentPointer().Stringify(where);
  std::string key = where.GetString();  // e.g. "/timeout_ms"
  if (!key.empty() && key[0] == '/') key.erase(0, 1);
  const rapidjson::Value* failing_schema = validator.GetInvalidSchemaPointer().Get(schema_document);
  const std::string what = requirement(validator.GetInvalidSchemaKeyword(), failing_schema);
  refuse(plugin, key.empty() ? what : "key '" + key + "' " + what);
}

struct RowEncoder::State {
  rapidjson::Document properties;
  rapidjson::StringBuffer buffer;
};

RowEncoder::RowEncoder() : state_(std::make_unique<State>()) {}
RowEncoder::~RowEncoder() = default;

bool RowEncoder::append(const wep_row& row, std::string& out, std::string& why) {
  const std::string_view event_id = wep::view(row.event_id);
  auto fail = [&](const std::string& what) {
    why = "row " + (event_id.empty() ? "#" + std::to_string(row.queue_id) : std::string(event_id)) + ": " + what;
    return false;
  };
  if (row.event_id.size == 0) return fail("empty event_id");
  if (row.event_type.size == 0) return fail("empty event_type");
  if (row.created_at.size == 0) return fail("empty created_at");

  auto& properties = state_->properties;
  const bool has_properties = row.properties_json.size > 0;
  if (has_properties) {
    properties.Parse<rapidjson::kParseValidateEncodingFlag>(row.properties_json.data, row.properties_json.size);
    if (properties.HasParseError())
      return fail(std::string("properties are not valid JSON: ") +
                  rapidjson::GetParseError_En(properties.GetParseError()));
    if (!properties.IsObject()) return fail("properties are not a JSON object");
  }

  auto& buffer = state_->buffer;
  buffer.Clear();
  using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                   rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;
  Writer writer(buffer);
  auto string = [&](wep_str s) { return writer.String(s.data, static_cast<rapidjson::SizeType>(s.size)); };
  bool ok = writer.StartObject();
  ok = ok && writer.Key("event_id") && string(row.event_id);
  ok = ok && writer.Key("event_type") && string(row.event_type);
  ok = ok && writer.Key("properties") && (has_properties ? properties.Accept(writer) : writer.Null());
  ok = ok && writer.Key("user_id") && (row.user_id.size > 0 ? string(row.user_id) : writer.Null());
  ok = ok && writer.Key("created_at") && string(row.created_at);
  ok = ok && writer.EndObject();
  if (!ok) return fail("a text field is not valid UTF-8");
  out.append(buffer.GetString(), buffer.GetSize());
  return true;
}

}  // namespace wep::transport
