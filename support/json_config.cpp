#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <stdexcept>
#include <wep/support/bounded_json.hpp>
#include <wep/support/json_config.hpp>

namespace wep::json_config {
namespace {

std::string to_json(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

std::string pointer_text(const rapidjson::Pointer& pointer) {
  rapidjson::StringBuffer buffer;
  pointer.Stringify(buffer);  // RFC 6901 escaping: "~" -> "~0", "/" -> "~1"
  return {buffer.GetString(), buffer.GetSize()};
}

std::string parse_error(const rapidjson::Document& document) {
  return "not valid JSON (offset " + std::to_string(document.GetErrorOffset()) +
         "): " + rapidjson::GetParseError_En(document.GetParseError());
}

// A JSON Schema type name with its article: "a string", "an integer", "null".
std::string with_article(std::string_view type) {
  if (type == "null") return "null";
  const bool vowel = !type.empty() && std::string_view("aeiou").find(type[0]) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(type);
}

std::string_view type_of(const rapidjson::Value& value) {
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

// The value of a "type" rule in words: "a string", "an object or null".
std::string expected_type(const rapidjson::Value& rule) {
  if (rule.IsString()) return with_article(rule.GetString());
  if (!rule.IsArray()) return to_json(rule);
  std::string out;
  for (const auto& type : rule.GetArray()) {
    if (!out.empty()) out += " or ";
    out += type.IsString() ? with_article(type.GetString()) : to_json(type);
  }
  return out;
}

// Turns the validator's failing keyword into a refusal naming the key.
Refusal describe(const rapidjson::SchemaValidator& validator, const rapidjson::Document& schema,
                 const rapidjson::Document& document) {
  const std::string keyword = validator.GetInvalidSchemaKeyword();
  const rapidjson::Pointer& where = validator.GetInvalidDocumentPointer();
  Refusal refusal{pointer_text(where), {}};
  const rapidjson::Value* schema_node = validator.GetInvalidSchemaPointer().Get(schema);
  const rapidjson::Value* instance = where.Get(document);
  const rapidjson::Value* rule = nullptr;  // the failing keyword's value in the schema
  if (schema_node && schema_node->IsObject()) {
    auto it = schema_node->FindMember(keyword.c_str());
    if (it != schema_node->MemberEnd()) rule = &it->value;
  }

  if (keyword == "additionalProperties") {
    refusal.reason = "unknown key";  // RapidJSON 1.1 points at the unknown key itself
  } else if (keyword == "required") {
    refusal.reason = "required key missing";  // RapidJSON points at the object: name the first missing key
    if (rule && rule->IsArray() && instance && instance->IsObject()) {
      for (const auto& name : rule->GetArray()) {
        if (!name.IsString() || instance->HasMember(name)) continue;
        refusal.pointer = pointer_text(where.Append(name));
        break;
      }
    }
  } else if (keyword == "type" && rule) {
    refusal.reason = "expected " + expected_type(*rule);
    if (instance) refusal.reason += ", got " + with_article(type_of(*instance));
  } else if (keyword == "minLength" && rule && rule->IsUint() && rule->GetUint() == 1) {
    refusal.reason = "must not be empty";
  } else if (keyword == "uniqueItems") {
    refusal.reason = "duplicate item (items must be unique)";
  } else {
    // Rules whose message quotes the rule's value: {keyword, before, after}.
    static constexpr std::string_view worded[][3] = {
        {"minimum", "must be >= ", ""},
        {"maximum", "must be <= ", ""},
        {"minLength", "must be at least ", " characters long"},
        {"maxLength", "must be at most ", " characters long"},
        {"pattern", "has an invalid format (expected ", ")"},
        {"enum", "must be one of ", ""},
    };
    for (const auto& [name, before, after] : worded) {
      if (rule && keyword == name) refusal.reason = std::string(before) + to_json(*rule) + std::string(after);
    }
    if (refusal.reason.empty()) refusal.reason = "violates the schema's \"" + keyword + "\" rule";
  }
  return refusal;
}

}  // namespace

std::string Refusal::message() const { return (pointer.empty() ? "/" : pointer) + ": " + reason; }

std::optional<Refusal> parse_and_validate(std::string_view json, std::string_view schema_json,
                                          rapidjson::Document& out) {
  rapidjson::Document schema_document;
  schema_document.Parse(schema_json.data(), schema_json.size());
  if (schema_document.HasParseError())
    throw std::invalid_argument("the JSON schema is " + parse_error(schema_document));

  const json::ParseOutcome parsed = json::parse_document<rapidjson::kParseValidateEncodingFlag>(out, json);
  if (parsed.too_deep) return Refusal{{}, "not valid JSON: " + parsed.message()};
  if (!parsed.ok())
    return Refusal{
        {},
        "not valid JSON (offset " + std::to_string(parsed.offset) + "): " + rapidjson::GetParseError_En(parsed.code)};

  const rapidjson::SchemaDocument schema(schema_document);
  rapidjson::SchemaValidator validator(schema);
  if (out.Accept(validator)) return std::nullopt;
  return describe(validator, schema_document, out);
}

}  // namespace wep::json_config
