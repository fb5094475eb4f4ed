#include "json_util.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <wep/support/bounded_json.hpp>

namespace wep::host_stub {

std::optional<std::string> compact_json(std::string_view text, bool require_object, std::string& error) {
  rapidjson::Document document;
  const wep::json::ParseOutcome parsed =
      wep::json::parse_document<rapidjson::kParseValidateEncodingFlag>(document, text);
  if (!parsed.ok()) {
    error = parsed.message();
    return std::nullopt;
  }
  if (require_object && !document.IsObject()) {
    error = "expected a JSON object";
    return std::nullopt;
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  document.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string json_quote(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace wep::host_stub
