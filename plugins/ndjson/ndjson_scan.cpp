#include "ndjson_scan.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cstring>
#include <utility>
#include <wep/support/bounded_json.hpp>

namespace wep::ndjson {
namespace {

// SAX: remembers the first string value of a top-level "event_id" key; builds
// no DOM, so a scan allocates nothing per line beyond the parser's stack.
struct EventIdHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, EventIdHandler> {
  unsigned depth = 0;
  bool root_is_object = false;
  bool next_is_event_id = false;
  bool found = false;
  std::string copied;  // the event id

  bool Default() {
    next_is_event_id = false;
    return true;
  }
  bool StartObject() {
    if (depth == 0) root_is_object = true;
    ++depth;
    next_is_event_id = false;
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    return true;
  }
  bool StartArray() {
    ++depth;
    next_is_event_id = false;
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth;
    return true;
  }
  bool Key(const char* text, rapidjson::SizeType size, bool) {
    next_is_event_id = depth == 1 && std::string_view(text, size) == "event_id";
    return true;
  }
  bool String(const char* text, rapidjson::SizeType size, bool) {
    if (next_is_event_id && !found) {
      found = true;
      copied.assign(text, size);
    }
    next_is_event_id = false;
    return true;
  }
};

}  // namespace

std::string row_event_id(std::string_view line) {
  rapidjson::MemoryStream stream(line.data(), line.size());
  rapidjson::Reader reader;
  EventIdHandler handler;
  const wep::json::ParseOutcome parsed =
      wep::json::parse_sax<rapidjson::kParseValidateEncodingFlag>(reader, stream, handler);
  if (!parsed.ok() || !handler.root_is_object || !handler.found) return {};
  return std::move(handler.copied);
}

LineScanner::LineScanner(uint64_t base_offset, std::function<void(std::string_view, uint64_t)> on_row)
    : on_row_(std::move(on_row)), offset_(base_offset), complete_end_(base_offset) {}

void LineScanner::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const void* newline = std::memchr(bytes.data(), '\n', bytes.size());
    const size_t take = newline ? static_cast<size_t>(static_cast<const char*>(newline) - bytes.data()) : bytes.size();
    if (!line_too_long_) {
      if (line_.size() + take > kMaxRowLineBytes) {
        line_too_long_ = true;
        line_.clear();
        line_.shrink_to_fit();
      } else {
        line_.append(bytes.data(), take);
      }
    }
    offset_ += take;
    bytes.remove_prefix(take);
    if (!newline) break;
    offset_ += 1;  // the '\n'
    bytes.remove_prefix(1);
    end_line();
  }
}

void LineScanner::end_line() {
  ++lines_;
  complete_end_ = offset_;
  std::string event_id = line_too_long_ ? std::string() : row_event_id(line_);
  if (event_id.empty()) {
    if (foreign_lines_++ == 0) first_foreign_line_ = lines_;
  } else {
    ++rows_;
    on_row_(event_id, offset_);
  }
  line_.clear();
  line_too_long_ = false;
}

}  // namespace wep::ndjson
