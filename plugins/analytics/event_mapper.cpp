#include "event_mapper.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <wep/support/bounded_json.hpp>

namespace wep::analytics {
namespace {

// Parsing with stack memory first: most payloads need no heap at all.
using Allocator = rapidjson::MemoryPoolAllocator<>;
using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator, Allocator>;

}  // namespace

namespace {

// The screen's verdict on a JSON number: integers (and doubles holding an
// integer) by their magnitude; fractions are never personal data.
PiiKind classify_number(const rapidjson::Value& value) {
  if (value.IsUint64()) return classify_pii_integer(value.GetUint64());
  if (value.IsInt64()) return classify_pii_integer(0 - static_cast<uint64_t>(value.GetInt64()));
  const double number = std::fabs(value.GetDouble());
  if (!(number < 1e19) || std::trunc(number) != number) return PiiKind::none;
  return classify_pii_integer(static_cast<uint64_t>(number));
}

}  // namespace

bool EventMapper::count_pii(PiiKind kind) {
  if (kind == PiiKind::none) return false;
  stats_.properties_dropped_pii.fetch_add(1, std::memory_order_relaxed);
  std::atomic<int64_t>* counter = nullptr;
  switch (kind) {
    case PiiKind::email:
      counter = &stats_.pii_email;
      break;
    case PiiKind::phone:
      counter = &stats_.pii_phone;
      break;
    case PiiKind::ip_address:
    case PiiKind::mac_address:
      counter = &stats_.pii_ip;
      break;
    case PiiKind::url:
      counter = &stats_.pii_url;
      break;
    case PiiKind::long_number:
    case PiiKind::card_number:
      counter = &stats_.pii_long_number;
      break;
    case PiiKind::secret:
      counter = &stats_.pii_secret;
      break;
    case PiiKind::none:
      break;
  }
  if (counter) counter->fetch_add(1, std::memory_order_relaxed);
  return true;
}

struct EventMapper::Buffers {
  std::string payload;                 // in-situ parsing works on this copy
  rapidjson::StringBuffer properties;  // the kept properties as JSON
};

EventMapper::EventMapper(const AnalyticsConfig& config, std::optional<std::string> user_id, Stats& stats)
    : config_(config), user_id_(std::move(user_id)), stats_(stats), buffers_(std::make_unique<Buffers>()) {}

EventMapper::~EventMapper() = default;

const std::string& EventMapper::created_at(int64_t committed_at_ms) {
  // Formatting costs far more than an insert's share of CPU; events come in
  // bursts within the same second, so only the milliseconds change.
  int64_t second = committed_at_ms / 1000;
  int64_t millis = committed_at_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    second -= 1;
  }
  if (second != cached_second_) {
    cached_created_at_ = created_at_from_ms(second * 1000);  // "...SS.000"
    cached_second_ = second;
  }
  char* ms = cached_created_at_.data() + cached_created_at_.size() - 3;
  ms[0] = static_cast<char>('0' + millis / 100);
  ms[1] = static_cast<char>('0' + (millis / 10) % 10);
  ms[2] = static_cast<char>('0' + millis % 10);
  return cached_created_at_;
}

bool EventMapper::map(std::string_view mutation_type, std::string_view payload_json, int64_t committed_at_ms,
                      NewRow& row) {
  MappedEvent mapped;
  if (!map_event(mutation_type, payload_json, mapped)) return false;
  fill_row(mapped.event_type, mapped.properties_json, committed_at_ms, row);
  return true;
}

void EventMapper::fill_row(std::string_view event_type, std::optional<std::string_view> properties_json,
                           int64_t committed_at_ms, NewRow& row) {
  // Assignments, not emplace: a reused row keeps its strings' capacity.
  row.event_type.assign(event_type);
  if (!properties_json) {
    row.properties_json.reset();
  } else if (row.properties_json) {
    row.properties_json->assign(*properties_json);
  } else {
    row.properties_json.emplace(*properties_json);
  }
  if (!user_id_) {
    row.user_id.reset();
  } else if (row.user_id) {
    row.user_id->assign(*user_id_);
  } else {
    row.user_id.emplace(*user_id_);
  }
  row.created_at.assign(created_at(committed_at_ms));
}

bool EventMapper::map_event(std::string_view mutation_type, std::string_view payload_json, MappedEvent& out) {
  const auto mapping = config_.events.find(mutation_type);
  if (mapping == config_.events.end()) {
    stats_.dropped_unmapped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  // The parse stack's first chunk must fit in its buffer with the pool's
  // chunk header, or every parse would fall back to a heap chunk.
  char value_buffer[4096];
  char parse_buffer[2048];
  Allocator value_allocator(value_buffer, sizeof(value_buffer));
  Allocator parse_allocator(parse_buffer, sizeof(parse_buffer));
  Document payload(&value_allocator, 1024, &parse_allocator);
  // In situ: strings stay in the copy instead of being copied out of it.
  // Iterative and depth-bounded: a payload nested 100,000 deep is refused,
  // not a stack overflow in the host's process.
  buffers_->payload.assign(payload_json);
  rapidjson::InsituStringStream stream(buffers_->payload.data());
  const wep::json::ParseOutcome parsed = wep::json::parse_document_stream<rapidjson::kParseInsituFlag>(
      payload, stream, wep::json::kMaxJsonDepth, &parse_allocator);
  if (!parsed.ok() || !payload.IsObject()) {
    stats_.dropped_invalid.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  rapidjson::StringBuffer& properties = buffers_->properties;
  properties.Clear();
  rapidjson::Writer<rapidjson::StringBuffer> writer(properties);
  writer.StartObject();
  bool any = false;
  for (const std::string& key : mapping->second.properties) {
    const auto member = payload.FindMember(rapidjson::StringRef(key.data(), key.size()));
    if (member == payload.MemberEnd()) continue;
    const auto& value = member->value;
    if (value.IsBool()) {
      writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      writer.Bool(value.GetBool());
      any = true;
    } else if (value.IsNumber()) {
      if (value.IsDouble() && !std::isfinite(value.GetDouble())) {
        // Out of double's range (e.g. 1.5e400 may parse as infinity): JSON has
        // no text for it, so it is dropped like a value of another type.
        stats_.properties_dropped_type.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (count_pii(classify_number(value))) continue;
      writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      value.Accept(writer);
      any = true;
    } else if (value.IsString()) {
      const std::string_view text(value.GetString(), value.GetStringLength());
      if (text.size() > kMaxPropertyStringBytes) {
        stats_.properties_dropped_long.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (count_pii(classify_pii(text))) continue;
      writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
      any = true;
    } else {
      stats_.properties_dropped_type.fetch_add(1, std::memory_order_relaxed);  // null, object, array
    }
  }
  writer.EndObject();

  out.event_type = mapping->second.event_type;
  if (any) {
    out.properties_json.emplace(properties.GetString(), properties.GetSize());
  } else {
    out.properties_json.reset();  // nothing kept: NULL, not "{}"
  }
  return true;
}

}  // namespace wep::analytics
