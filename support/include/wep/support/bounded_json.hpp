// Depth-bounded JSON parsing for text that comes from outside (commands,
// mutation payloads, settings, configs, rows, NDJSON lines, server replies).
//
// RapidJSON's default parser recurses once per nesting level, and so do
// GenericValue's destructor and Accept(): a payload nested 100,000 deep
// (200 KB) overflows the stack. These helpers parse iteratively
// (kParseIterativeFlag: no recursion in the parser) and stop at
// kMaxJsonDepth levels, so every document they produce can be walked,
// copied, written and destroyed recursively in bounded stack space.
//
// Header-only (templates over RapidJSON types); no state, thread-safe.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace wep::json {

// Deepest nesting accepted: the root object or array is level 1. Configs,
// payloads and rows use a handful of levels; 64 leaves room for any real
// document and keeps a recursive walk of one well under 100 KB of stack.
inline constexpr unsigned kMaxJsonDepth = 64;

// Why a parse failed; ok() when it did not.
struct ParseOutcome {
  rapidjson::ParseErrorCode code = rapidjson::kParseErrorNone;
  size_t offset = 0;
  bool too_deep = false;  // nesting beyond the limit (code is then kParseErrorTermination)
  unsigned max_depth = kMaxJsonDepth;

  bool ok() const { return code == rapidjson::kParseErrorNone; }
  // "nested deeper than 64 levels at offset 70" or "invalid JSON at offset 3:
  // Missing a name for object member."
  std::string message() const {
    if (ok()) return {};
    if (too_deep)
      return "nested deeper than " + std::to_string(max_depth) + " levels at offset " + std::to_string(offset);
    return "invalid JSON at offset " + std::to_string(offset) + ": " + rapidjson::GetParseError_En(code);
  }
};

// A SAX handler that forwards every event to `Inner` and ends the parse
// (kParseErrorTermination) once objects and arrays nest deeper than
// max_depth. Inner's own refusals pass through unchanged.
template <typename Inner>
class DepthLimitedHandler {
 public:
  using Ch = char;

  DepthLimitedHandler(Inner& inner, unsigned max_depth) : inner_(inner), max_depth_(max_depth) {}

  bool Null() { return inner_.Null(); }
  bool Bool(bool b) { return inner_.Bool(b); }
  bool Int(int i) { return inner_.Int(i); }
  bool Uint(unsigned i) { return inner_.Uint(i); }
  bool Int64(int64_t i) { return inner_.Int64(i); }
  bool Uint64(uint64_t i) { return inner_.Uint64(i); }
  bool Double(double d) { return inner_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.RawNumber(s, n, copy); }
  bool String(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.String(s, n, copy); }
  bool Key(const Ch* s, rapidjson::SizeType n, bool copy) { return inner_.Key(s, n, copy); }
  bool StartObject() { return enter() && inner_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return inner_.EndObject(members);
  }
  bool StartArray() { return enter() && inner_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return inner_.EndArray(elements);
  }

  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ <= max_depth_) return true;
    too_deep_ = true;
    return false;
  }

  Inner& inner_;
  const unsigned max_depth_;
  unsigned depth_ = 0;
  bool too_deep_ = false;
};

// Runs `reader` over `stream` with `handler`, iteratively and depth-bounded.
// `Flags` are RapidJSON parse flags (kParseIterativeFlag is added).
template <unsigned Flags = rapidjson::kParseNoFlags, typename Reader, typename Stream, typename Handler>
ParseOutcome parse_sax(Reader& reader, Stream& stream, Handler& handler, unsigned max_depth = kMaxJsonDepth) {
  DepthLimitedHandler<Handler> limited(handler, max_depth);
  const rapidjson::ParseResult result = reader.template Parse<Flags | rapidjson::kParseIterativeFlag>(stream, limited);
  ParseOutcome outcome;
  outcome.max_depth = max_depth;
  if (result.IsError()) {
    outcome.code = result.Code();
    outcome.offset = result.Offset();
    outcome.too_deep = limited.too_deep();
  }
  return outcome;
}

// Parses `stream` into `document` (replacing its value; Null on failure).
// `reader_stack` is the allocator of the parser's own stack (nullptr: the
// reader's default).
template <unsigned Flags = rapidjson::kParseNoFlags, typename Document, typename Stream>
ParseOutcome parse_document_stream(Document& document, Stream& stream, unsigned max_depth = kMaxJsonDepth,
                                   typename Document::AllocatorType* reader_stack = nullptr) {
  using Reader = rapidjson::GenericReader<typename Document::EncodingType, typename Document::EncodingType,
                                          typename Document::AllocatorType>;
  ParseOutcome outcome;
  document.SetNull();
  auto generate = [&](Document& handler) {
    Reader reader(reader_stack);
    outcome = parse_sax<Flags>(reader, stream, handler, max_depth);
    return outcome.ok();
  };
  document.Populate(generate);
  if (!outcome.ok()) document.SetNull();
  return outcome;
}

// Parses `text` into `document`; see parse_document_stream.
template <unsigned Flags = rapidjson::kParseNoFlags, typename Document>
ParseOutcome parse_document(Document& document, std::string_view text, unsigned max_depth = kMaxJsonDepth) {
  rapidjson::MemoryStream bytes(text.data(), text.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(bytes);
  return parse_document_stream<Flags>(document, stream, max_depth);
}

}  // namespace wep::json
