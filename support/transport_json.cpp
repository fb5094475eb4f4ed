#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/pointer.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <wep/plugin.hpp>
#include <wep_support/bounded_json.hpp>
#include <wep_support/json_config.hpp>
#include <wep_support/transport_json.hpp>

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

// True when `s` is printable ASCII without '"' or '\\': such text is valid
// UTF-8 and JSON needs no escape in it, so it can be copied between quotes
// exactly as rapidjson's Writer would write it.
bool is_plain_ascii(wep_str s) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data);
  bool plain = true;
  for (size_t i = 0; i < s.size; ++i) {  // no early exit: the loop vectorizes
    const unsigned char c = bytes[i];
    plain &= c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  }
  return plain;
}

bool is_ascii(wep_str s) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data);
  unsigned char high_bits = 0;
  for (size_t i = 0; i < s.size; ++i) high_bits |= bytes[i];
  return high_bits < 0x80;
}

void append_quoted(std::string& out, wep_str s) {
  out.push_back('"');
  out.append(s.data, s.size);
  out.push_back('"');
}

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
    // ASCII is valid UTF-8: only text with other bytes needs the (slower)
    // encoding check.
    const json::ParseOutcome parsed =
        is_ascii(row.properties_json)
            ? json::parse_sax(state_->reader, stream, handler)
            : json::parse_sax<rapidjson::kParseValidateEncodingFlag>(state_->reader, stream, handler);
    if (!parsed.ok()) return fail("properties are not valid JSON: " + parsed.message());
    if (!handler.root_is_object) return fail("properties are not a JSON object");
  }

  // Fast path, byte for byte what the Writer below writes: every text field is
  // printable ASCII with nothing to escape (event ids, types, ISO dates and
  // pseudonymous ids nearly always are).
  if (is_plain_ascii(row.event_id) && is_plain_ascii(row.event_type) && is_plain_ascii(row.user_id) &&
      is_plain_ascii(row.created_at)) {
    out.append(R"({"event_id":)");
    append_quoted(out, row.event_id);
    out.append(R"(,"event_type":)");
    append_quoted(out, row.event_type);
    out.append(R"(,"properties":)");
    if (has_properties)
      out.append(row.properties_json.data, row.properties_json.size);
    else
      out.append("null");
    out.append(R"(,"user_id":)");
    if (row.user_id.size > 0)
      append_quoted(out, row.user_id);
    else
      out.append("null");
    out.append(R"(,"created_at":)");
    append_quoted(out, row.created_at);
    out.push_back('}');
    return true;
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
