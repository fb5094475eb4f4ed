#include "transport_json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/pointer.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <wep/plugin.hpp>
#include <wep_support/json_config.hpp>

namespace wep::transport {

void parse_config(std::string_view plugin, std::string_view config_json, const char* schema_json,
                  rapidjson::Document& config) {
  auto refusal = wep::json_config::parse_and_validate(config_json, schema_json, config);
  if (!refusal) return;
  // The transports' configs are flat: they name a key as 'url', not as a
  // JSON pointer (like their other config errors).
  std::string what = refusal->reason;
  if (!refusal->pointer.empty()) {
    const rapidjson::Pointer pointer(refusal->pointer.data(), refusal->pointer.size());
    const std::string key = pointer.GetTokenCount() == 1
                                ? std::string(pointer.GetTokens()[0].name, pointer.GetTokens()[0].length)
                                : refusal->pointer;
    what = "key '" + key + "': " + what;
  }
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, std::string(plugin) + " config: " + what);
}

namespace {

// SAX handler that only checks the document's root is an object: validating
// the stored properties text this way builds no DOM, so encoding a row
// allocates nothing per row and the text is copied to the body verbatim.
struct RootIsObject : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RootIsObject> {
  bool seen_root = false;
  bool root_is_object = false;
  bool Default() {
    if (!seen_root) seen_root = true;
    return true;
  }
  bool StartObject() {
    if (!seen_root) seen_root = root_is_object = true;
    return true;
  }
};

}  // namespace

struct RowEncoder::State {
  rapidjson::Reader reader;
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

  const bool has_properties = row.properties_json.size > 0;
  if (has_properties) {
    rapidjson::MemoryStream stream(row.properties_json.data, row.properties_json.size);
    RootIsObject handler;
    const rapidjson::ParseResult parsed = state_->reader.Parse<rapidjson::kParseValidateEncodingFlag>(stream, handler);
    if (parsed.IsError())
      return fail(std::string("properties are not valid JSON: ") + rapidjson::GetParseError_En(parsed.Code()));
    if (!handler.root_is_object) return fail("properties are not a JSON object");
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
  ok = ok && writer.Key("properties") &&
       (has_properties ? writer.RawValue(row.properties_json.data, row.properties_json.size, rapidjson::kObjectType)
                       : writer.Null());
  ok = ok && writer.Key("user_id") && (row.user_id.size > 0 ? string(row.user_id) : writer.Null());
  ok = ok && writer.Key("created_at") && string(row.created_at);
  ok = ok && writer.EndObject();
  if (!ok) return fail("a text field is not valid UTF-8");
  out.append(buffer.GetString(), buffer.GetSize());
  return true;
}

}  // namespace wep::transport
