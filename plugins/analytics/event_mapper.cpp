#include "event_mapper.hpp"

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdint>
#include <vector>
#include <wep/support/bounded_json.hpp>

namespace wep::analytics {
namespace {

// A value of the payload's top-level object, as the parser reported it:
// strings point into the in-situ copy of the payload.
struct PropertyValue {
  enum class Kind { absent, boolean, signed_integer, unsigned_integer, real, string, other } kind = Kind::absent;
  bool boolean = false;
  int64_t signed_number = 0;
  uint64_t unsigned_number = 0;
  double real = 0;
  std::string_view text;
};

// SAX handler that keeps, for each allow-listed key, the first top-level
// member with that key (what a DOM's FindMember would find), and nothing
// else: no document is built.
class AllowListCollector {
 public:
  using Ch = char;

  AllowListCollector(const std::vector<std::string>& keys, std::vector<PropertyValue>& values)
      : keys_(keys), values_(values) {
    values_.assign(keys.size(), PropertyValue());
  }

  bool Null() { return set_other(); }
  bool Bool(bool b) {
    if (PropertyValue* value = target()) {
      value->kind = PropertyValue::Kind::boolean;
      value->boolean = b;
    }
    return true;
  }
  bool Int(int i) { return set_signed(i); }
  bool Int64(int64_t i) { return set_signed(i); }
  bool Uint(unsigned u) { return set_unsigned(u); }
  bool Uint64(uint64_t u) { return set_unsigned(u); }
  bool Double(double d) {
    if (PropertyValue* value = target()) {
      value->kind = PropertyValue::Kind::real;
      value->real = d;
    }
    return true;
  }
  bool RawNumber(const Ch*, rapidjson::SizeType, bool) { return set_other(); }  // not asked for
  bool String(const Ch* s, rapidjson::SizeType length, bool) {
    if (PropertyValue* value = target()) {
      value->kind = PropertyValue::Kind::string;
      value->text = std::string_view(s, length);
    }
    return true;
  }
  bool Key(const Ch* s, rapidjson::SizeType length, bool) {
    current_ = kNone;
    if (depth_ != 1) return true;
    const std::string_view key(s, length);
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] == key) {
        if (values_[i].kind == PropertyValue::Kind::absent) current_ = i;  // the first member wins
        break;
      }
    }
    return true;
  }
  bool StartObject() {
    if (depth_ == 0) {
      root_is_object_ = true;
    } else {
      set_other();
    }
    ++depth_;
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    return true;
  }
  bool StartArray() {
    set_other();
    ++depth_;
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    return true;
  }

  bool root_is_object() const { return root_is_object_; }

 private:
  static constexpr size_t kNone = SIZE_MAX;

  // The slot the value being reported goes to, if it is an allow-listed
  // member of the root object; a value consumes its key.
  PropertyValue* target() {
    if (depth_ != 1 || current_ == kNone) return nullptr;
    PropertyValue* value = &values_[current_];
    current_ = kNone;
    return value;
  }
  bool set_other() {
    if (PropertyValue* value = target()) value->kind = PropertyValue::Kind::other;
    return true;
  }
  bool set_signed(int64_t number) {
    if (PropertyValue* value = target()) {
      value->kind = PropertyValue::Kind::signed_integer;
      value->signed_number = number;
    }
    return true;
  }
  bool set_unsigned(uint64_t number) {
    if (PropertyValue* value = target()) {
      value->kind = PropertyValue::Kind::unsigned_integer;
      value->unsigned_number = number;
    }
    return true;
  }

  const std::vector<std::string>& keys_;
  std::vector<PropertyValue>& values_;
  unsigned depth_ = 0;
  size_t current_ = kNone;
  bool root_is_object_ = false;
};

// The screen's verdict on a JSON number: integers (and doubles holding an
// integer) by their magnitude; fractions are never personal data.
PiiKind classify_number(const PropertyValue& value) {
  switch (value.kind) {
    case PropertyValue::Kind::signed_integer:
      return classify_pii_integer(value.signed_number < 0 ? 0 - static_cast<uint64_t>(value.signed_number)
                                                          : static_cast<uint64_t>(value.signed_number));
    case PropertyValue::Kind::unsigned_integer:
      return classify_pii_integer(value.unsigned_number);
    default:
      break;
  }
  const double number = std::fabs(value.real);
  if (!(number < 1e19) || std::trunc(number) != number) return PiiKind::none;
  return classify_pii_integer(static_cast<uint64_t>(number));
}

}  // namespace

bool EventMapper::note_pii(PiiKind kind, MappingCounts& counts) {
  switch (kind) {
    case PiiKind::none:
      return false;
    case PiiKind::email:
      ++counts.pii_email;
      break;
    case PiiKind::phone:
      ++counts.pii_phone;
      break;
    case PiiKind::ip_address:
    case PiiKind::mac_address:
      ++counts.pii_ip;
      break;
    case PiiKind::url:
      ++counts.pii_url;
      break;
    case PiiKind::long_number:
    case PiiKind::card_number:
      ++counts.pii_long_number;
      break;
    case PiiKind::secret:
      ++counts.pii_secret;
      break;
  }
  return true;
}

void EventMapper::count(const MappingCounts& counts) {
  const auto add = [](std::atomic<int64_t>& counter, int32_t n) {
    if (n != 0) counter.fetch_add(n, std::memory_order_relaxed);
  };
  add(stats_.dropped_unmapped, counts.dropped_unmapped);
  add(stats_.dropped_invalid, counts.dropped_invalid);
  add(stats_.pii_email, counts.pii_email);
  add(stats_.pii_phone, counts.pii_phone);
  add(stats_.pii_ip, counts.pii_ip);
  add(stats_.pii_url, counts.pii_url);
  add(stats_.pii_long_number, counts.pii_long_number);
  add(stats_.pii_secret, counts.pii_secret);
  add(stats_.properties_dropped_pii, counts.pii());
  add(stats_.properties_dropped_type, counts.properties_dropped_type);
  add(stats_.properties_dropped_long, counts.properties_dropped_long);
}

struct EventMapper::Buffers {
  std::string payload;                                            // in-situ parsing works on this copy
  std::vector<PropertyValue> values;                              // one per allow-listed key of the mapping
  rapidjson::StringBuffer properties;                             // the kept properties as JSON
  rapidjson::Writer<rapidjson::StringBuffer> writer{properties};  // writes them (its stack kept)
};

EventMapper::EventMapper(const AnalyticsConfig& config, std::optional<std::string> user_id, Stats& stats)
    : config_(config), user_id_(std::move(user_id)), stats_(stats), buffers_(std::make_unique<Buffers>()) {}

EventMapper::EventMapper(const EventMapper& other) : EventMapper(other.config_, other.user_id_, other.stats_) {}

EventMapper::~EventMapper() = default;

bool EventMapper::check_type(std::string_view mutation_type) {
  if (config_.events.find(mutation_type) != config_.events.end()) return true;
  stats_.dropped_unmapped.fetch_add(1, std::memory_order_relaxed);
  return false;
}

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
  const bool recorded = map_event(mutation_type, payload_json, mapped);
  count(mapped.counts);
  if (!recorded) return false;
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
  MappingCounts& counts = out.counts;
  counts = MappingCounts();
  const auto mapping = config_.events.find(mutation_type);
  if (mapping == config_.events.end()) {
    ++counts.dropped_unmapped;
    return false;
  }

  // In situ: strings stay in the copy instead of being copied out of it.
  // Iterative and depth-bounded: a payload nested 100,000 deep is refused,
  // not a stack overflow in the host's process. The parser's stack starts
  // in stack memory: most payloads need no heap at all.
  const std::vector<std::string>& keys = mapping->second.properties;
  std::vector<PropertyValue>& values = buffers_->values;
  buffers_->payload.assign(payload_json);
  rapidjson::InsituStringStream stream(buffers_->payload.data());
  char parse_buffer[1024];
  rapidjson::MemoryPoolAllocator<> parse_allocator(parse_buffer, sizeof(parse_buffer));
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>> reader(
      &parse_allocator, 256);
  AllowListCollector collector(keys, values);
  const wep::json::ParseOutcome parsed =
      wep::json::parse_sax<rapidjson::kParseInsituFlag>(reader, stream, collector, wep::json::kMaxJsonDepth);
  if (!parsed.ok() || !collector.root_is_object()) {
    ++counts.dropped_invalid;
    return false;
  }

  rapidjson::StringBuffer& properties = buffers_->properties;
  properties.Clear();
  rapidjson::Writer<rapidjson::StringBuffer>& writer = buffers_->writer;
  writer.Reset(properties);
  writer.StartObject();
  bool any = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    const PropertyValue& value = values[i];
    const auto write_key = [&] { writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size())); };
    switch (value.kind) {
      case PropertyValue::Kind::absent:
        continue;
      case PropertyValue::Kind::boolean:
        write_key();
        writer.Bool(value.boolean);
        break;
      case PropertyValue::Kind::real:
        if (!std::isfinite(value.real)) {
          // Out of double's range (e.g. 1.5e400 may parse as infinity): JSON has
          // no text for it, so it is dropped like a value of another type.
          ++counts.properties_dropped_type;
          continue;
        }
        [[fallthrough]];
      case PropertyValue::Kind::signed_integer:
      case PropertyValue::Kind::unsigned_integer:
        if (note_pii(classify_number(value), counts)) continue;
        write_key();
        if (value.kind == PropertyValue::Kind::real) {
          writer.Double(value.real);
        } else if (value.kind == PropertyValue::Kind::signed_integer) {
          writer.Int64(value.signed_number);
        } else {
          writer.Uint64(value.unsigned_number);
        }
        break;
      case PropertyValue::Kind::string:
        if (value.text.size() > kMaxPropertyStringBytes) {
          ++counts.properties_dropped_long;
          continue;
        }
        if (note_pii(classify_pii(value.text), counts)) continue;
        write_key();
        writer.String(value.text.data(), static_cast<rapidjson::SizeType>(value.text.size()));
        break;
      case PropertyValue::Kind::other:  // null, object, array
        ++counts.properties_dropped_type;
        continue;
    }
    any = true;
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
