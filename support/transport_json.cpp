#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/pointer.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <wep/plugin.hpp>
#include <wep/support/bounded_json.hpp>
#include <wep/support/json_config.hpp>
#include <wep/support/transport_json.hpp>

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

// SAX handler that checks the document's root is an object and its nesting
// is at most kMaxPropertiesDepth deep: validating the stored properties text
// this way builds no DOM, so encoding a row allocates nothing per row and the
// text is copied to the body verbatim.
struct RootIsObject : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RootIsObject> {
  bool seen_root = false;
  bool root_is_object = false;
  int depth = 0;
  bool Default() {
    if (!seen_root) seen_root = true;
    return true;
  }
  bool StartObject() {
    if (!seen_root) seen_root = root_is_object = true;
    return ++depth <= kMaxPropertiesDepth;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    return true;
  }
  bool StartArray() {
    if (!seen_root) seen_root = true;
    return ++depth <= kMaxPropertiesDepth;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth;
    return true;
  }
};

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";  // U+FFFD

// Appends `s` with U+0000 and every invalid UTF-8 sequence (e.g. what a lone
// surrogate escape decodes to) replaced by U+FFFD: text PostgreSQL's jsonb
// and text types accept.
void append_jsonb_safe(const char* s, size_t n, std::string& out) {
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      out.append(kReplacementCharacter);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t smallest = 0;
    if ((c & 0xE0) == 0xC0) {
      length = 2, code_point = c & 0x1F, smallest = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, code_point = c & 0x0F, smallest = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, code_point = c & 0x07, smallest = 0x10000;
    }
    bool valid = length > 0 && i + length <= n;
    for (size_t k = 1; valid && k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      valid = (b & 0xC0) == 0x80;
      code_point = (code_point << 6) | (b & 0x3F);
    }
    valid =
        valid && code_point >= smallest && code_point <= 0x10FFFF && !(code_point >= 0xD800 && code_point <= 0xDFFF);
    if (!valid) {
      out.append(kReplacementCharacter);
      ++i;
      continue;
    }
    out.append(s + i, length);
    i += length;
  }
}

// True when JSON text may hold an escape jsonb refuses or that decodes to
// invalid UTF-8: \u0000 or a surrogate escape (\uD800..\uDFFF; a valid pair
// is rewritten as the character it encodes). May say true for an escaped
// backslash followed by such letters: the rewrite then changes nothing.
bool may_hold_jsonb_unsafe_escape(wep_str text) {
  const std::string_view s(text.data, text.size);
  for (size_t at = s.find("\\u"); at != std::string_view::npos; at = s.find("\\u", at + 2)) {
    if (at + 6 > s.size()) return false;
    const std::string_view hex = s.substr(at + 2, 4);
    if (hex == "0000") return true;
    if ((hex[0] == 'd' || hex[0] == 'D') && std::strchr("89abcdefABCDEF", hex[1]) != nullptr && hex[1] != '\0')
      return true;
  }
  return false;
}

// Forwards SAX events to a Writer, every string and key made jsonb-safe
// (append_jsonb_safe) and numbers copied verbatim.
template <class Writer>
struct JsonbSafeCopy : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, JsonbSafeCopy<Writer>> {
  explicit JsonbSafeCopy(Writer& w) : writer(w) {}
  Writer& writer;
  std::string scratch;
  bool Null() { return writer.Null(); }
  bool Bool(bool b) { return writer.Bool(b); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return writer.RawValue(s, n, rapidjson::kNumberType); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    scratch.clear();
    append_jsonb_safe(s, n, scratch);
    return writer.String(scratch.data(), static_cast<rapidjson::SizeType>(scratch.size()));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    scratch.clear();
    append_jsonb_safe(s, n, scratch);
    return writer.Key(scratch.data(), static_cast<rapidjson::SizeType>(scratch.size()));
  }
  bool StartObject() { return writer.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return writer.EndObject(n); }
  bool StartArray() { return writer.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return writer.EndArray(n); }
};

size_t character_count(wep_str s) {
  size_t count = 0;
  for (size_t i = 0; i < s.size; ++i) count += (static_cast<unsigned char>(s.data[i]) & 0xC0) != 0x80;
  return count;
}

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
  rapidjson::StringBuffer properties;  // properties rewritten jsonb-safe
  std::string event_type, user_id;     // text fields with U+0000 replaced
  // The latest created_at the schema accepts: now + kMaxCreatedAtAheadMs,
  // "YYYY-MM-DDTHH:MM:SS", recomputed once a minute.
  std::string latest_created_at;
  std::chrono::steady_clock::time_point latest_valid_until{};

  const std::string& latest_accepted_created_at() {
    const auto now = std::chrono::steady_clock::now();
    if (latest_created_at.empty() || now >= latest_valid_until) {
      const time_t latest = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() +
                                                                 std::chrono::milliseconds(kMaxCreatedAtAheadMs));
      tm utc{};
      gmtime_r(&latest, &utc);
      char text[32];
      strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
      latest_created_at = text;
      latest_valid_until = now + std::chrono::minutes(1);
    }
    return latest_created_at;
  }
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
  if (character_count(row.event_type) > kMaxTextCharacters)
    return fail("event_type longer than " + std::to_string(kMaxTextCharacters) + " characters");
  if (character_count(row.user_id) > kMaxTextCharacters)
    return fail("user_id longer than " + std::to_string(kMaxTextCharacters) + " characters");
  const std::string_view created_at = wep::view(row.created_at);
  if (created_at < kEarliestCreatedAt || created_at.substr(0, 19) > state_->latest_accepted_created_at())
    return fail("created_at " + std::string(created_at.substr(0, 40)) + " is outside [" + kEarliestCreatedAt +
                ", now + 1 day]");

  wep_row safe = row;  // the row with jsonb-safe text where the original is not
  const bool has_properties = row.properties_json.size > 0;
  if (has_properties) {
    if (row.properties_json.size > kMaxPropertiesBytes)
      return fail("properties larger than " + std::to_string(kMaxPropertiesBytes) + " bytes");
    rapidjson::MemoryStream stream(row.properties_json.data, row.properties_json.size);
    RootIsObject handler;
    // ASCII is valid UTF-8: only text with other bytes needs the (slower)
    // encoding check. Iterative: no recursion however deep the text nests.
    constexpr unsigned kChecked = rapidjson::kParseIterativeFlag;
    const rapidjson::ParseResult parsed =
        is_ascii(row.properties_json)
            ? state_->reader.Parse<kChecked>(stream, handler)
            : state_->reader.Parse<kChecked | rapidjson::kParseValidateEncodingFlag>(stream, handler);
    if (parsed.IsError()) {
      if (handler.depth > kMaxPropertiesDepth)
        return fail("properties nest deeper than " + std::to_string(kMaxPropertiesDepth) + " levels");
      return fail(std::string("properties are not valid JSON: ") + rapidjson::GetParseError_En(parsed.Code()));
    }
    if (!handler.root_is_object) return fail("properties are not a JSON object");
    if (may_hold_jsonb_unsafe_escape(row.properties_json)) {
      auto& rewritten = state_->properties;
      rewritten.Clear();
      rapidjson::Writer<rapidjson::StringBuffer> writer(rewritten);
      JsonbSafeCopy<rapidjson::Writer<rapidjson::StringBuffer>> copy(writer);
      rapidjson::MemoryStream again(row.properties_json.data, row.properties_json.size);
      if (state_->reader.Parse<kChecked | rapidjson::kParseNumbersAsStringsFlag>(again, copy).IsError())
        return fail("properties cannot be rewritten for jsonb");
      safe.properties_json = {rewritten.GetString(), rewritten.GetSize()};
    }
  }
  if (std::memchr(row.event_type.data, 0, row.event_type.size)) {
    state_->event_type.clear();
    append_jsonb_safe(row.event_type.data, row.event_type.size, state_->event_type);
    safe.event_type = wep::str(state_->event_type);
  }
  if (row.user_id.size > 0 && std::memchr(row.user_id.data, 0, row.user_id.size)) {
    state_->user_id.clear();
    append_jsonb_safe(row.user_id.data, row.user_id.size, state_->user_id);
    safe.user_id = wep::str(state_->user_id);
  }
  return write_row(safe, out, why);
}

bool RowEncoder::write_row(const wep_row& row, std::string& out, std::string& why) {
  const std::string_view event_id = wep::view(row.event_id);
  auto fail = [&](const std::string& what) {
    why = "row " + (event_id.empty() ? "#" + std::to_string(row.queue_id) : std::string(event_id)) + ": " + what;
    return false;
  };
  const bool has_properties = row.properties_json.size > 0;

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
