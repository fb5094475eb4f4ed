#include "event_mapper.hpp"

#include <arpa/inet.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

namespace analytics {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_email_local_char(char c) { return is_alpha(c) || is_digit(c) || std::strchr("._%+-", c) != nullptr; }
bool is_domain_char(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.'; }

bool looks_like_email(std::string_view s) {
  for (size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    if (at == 0 || !is_email_local_char(s[at - 1])) continue;
    size_t end = at + 1;
    while (end < s.size() && is_domain_char(s[end])) ++end;
    const std::string_view domain = s.substr(at + 1, end - at - 1);
    const size_t dot = domain.rfind('.');
    if (dot == std::string_view::npos || dot == 0) continue;
    const std::string_view tld = domain.substr(dot + 1);
    if (tld.size() >= 2 && is_alpha(tld[0])) return true;
  }
  return false;
}

bool looks_like_url(std::string_view s) {
  for (size_t p = s.find("://"); p != std::string_view::npos; p = s.find("://", p + 1)) {
    if (p > 0 && is_alpha(s[p - 1])) return true;  // <scheme>://
  }
  for (size_t i = 0; i + 4 <= s.size(); ++i) {
    if ((i == 0 || !is_alpha(s[i - 1])) && lower(s[i]) == 'w' && lower(s[i + 1]) == 'w' && lower(s[i + 2]) == 'w' &&
        s[i + 3] == '.') {
      return true;
    }
  }
  return false;
}

bool looks_like_ip_address(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (!(is_hex(s[i]) || s[i] == ':' || s[i] == '.')) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < s.size() && (is_hex(s[end]) || s[end] == ':' || s[end] == '.')) ++end;
    std::string_view run = s.substr(i, end - i);
    while (!run.empty() && run.back() == '.') run.remove_suffix(1);  // sentence end
    size_t colons = 0, dots = 0, digits = 0;
    for (char c : run) {
      colons += c == ':';
      dots += c == '.';
      digits += is_digit(c);
    }
    // IPv6 needs two ':' and a digit or three ':', so that words such as
    // "dead::beef" or "a::b" (valid IPv6 text, but rarely an address) pass.
    const bool v6_candidate = colons >= 3 || (colons == 2 && digits > 0);
    const bool v4_candidate = colons == 0 && dots == 3;
    if (run.size() >= 3 && run.size() <= 45 && (v6_candidate || v4_candidate)) {
      char text[46];
      std::memcpy(text, run.data(), run.size());
      text[run.size()] = '\0';
      unsigned char address[16];
      if (v6_candidate && inet_pton(AF_INET6, text, address) == 1) return true;
      if (v4_candidate && inet_pton(AF_INET, text, address) == 1) return true;
    }
    i = end;
  }
  return false;
}

bool is_phone_char(char c) { return is_digit(c) || std::strchr(" +()-.", c) != nullptr; }

PiiKind classify_digit_runs(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (!is_phone_char(s[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    size_t digits = 0;
    bool punctuation = false;
    while (end < s.size() && is_phone_char(s[end])) {
      if (is_digit(s[end])) {
        ++digits;
      } else if (digits > 0 && end + 1 < s.size() && is_phone_char(s[end + 1])) {
        punctuation = true;  // inside the run, not trailing
      }
      ++end;
    }
    size_t first = i;
    while (first < end && s[first] == ' ') ++first;
    const bool plus = first < end && s[first] == '+';
    if (digits >= 7) {
      return (digits <= 15 && (punctuation || plus)) ? PiiKind::phone : PiiKind::long_number;
    }
    i = end;
  }
  return PiiKind::none;
}

// Parsing with stack memory first: most payloads need no heap at all.
using Allocator = rapidjson::MemoryPoolAllocator<>;
using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator, Allocator>;

}  // namespace

PiiKind classify_pii(std::string_view text) {
  if (looks_like_email(text)) return PiiKind::email;
  if (looks_like_url(text)) return PiiKind::url;
  if (looks_like_ip_address(text)) return PiiKind::ip_address;
  return classify_digit_runs(text);
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
  buffers_->payload.assign(payload_json);
  payload.ParseInsitu(buffers_->payload.data());
  if (payload.HasParseError() || !payload.IsObject()) {
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
    if (value.IsBool() || value.IsNumber()) {
      writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      value.Accept(writer);
      any = true;
    } else if (value.IsString()) {
      const std::string_view text(value.GetString(), value.GetStringLength());
      if (text.size() > kMaxPropertyStringBytes) {
        stats_.properties_dropped_long.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const PiiKind kind = classify_pii(text);
      if (kind != PiiKind::none) {
        stats_.properties_dropped_pii.fetch_add(1, std::memory_order_relaxed);
        switch (kind) {
          case PiiKind::email:
            stats_.pii_email.fetch_add(1, std::memory_order_relaxed);
            break;
          case PiiKind::phone:
            stats_.pii_phone.fetch_add(1, std::memory_order_relaxed);
            break;
          case PiiKind::ip_address:
            stats_.pii_ip.fetch_add(1, std::memory_order_relaxed);
            break;
          case PiiKind::url:
            stats_.pii_url.fetch_add(1, std::memory_order_relaxed);
            break;
          case PiiKind::long_number:
            stats_.pii_long_number.fetch_add(1, std::memory_order_relaxed);
            break;
          case PiiKind::none:
            break;
        }
        continue;
      }
      writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
      any = true;
    } else {
      stats_.properties_dropped_type.fetch_add(1, std::memory_order_relaxed);  // null, object, array
    }
  }
  writer.EndObject();

  row.event_type = mapping->second.event_type;
  // Assignments, not emplace: a reused row keeps its strings' capacity.
  if (any) {
    const std::string_view text(properties.GetString(), properties.GetSize());
    if (row.properties_json) {
      row.properties_json->assign(text);
    } else {
      row.properties_json.emplace(text);
    }
  } else {
    row.properties_json.reset();  // nothing kept: NULL, not "{}"
  }
  row.user_id = user_id_;
  row.created_at = created_at(committed_at_ms);
  return true;
}

}  // namespace analytics
