#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/String.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <wep/support/http_text.hpp>

namespace wep::transport {

std::string sanitized_excerpt(std::string_view body, size_t max_bytes) {
  std::string text;
  text.reserve(std::min(body.size(), max_bytes) + 3);
  bool last_was_space = true;  // also drops leading white space
  size_t used = 0;
  for (; used < body.size() && text.size() < max_bytes; ++used) {
    const auto c = static_cast<unsigned char>(body[used]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!last_was_space) text.push_back(' ');
      last_was_space = true;
    } else {
      text.push_back(c >= 0x21 && c < 0x7f ? static_cast<char>(c) : '?');
      last_was_space = false;
    }
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  if (used < body.size()) text += "...";
  return text.empty() ? "(empty body)" : text;
}

std::optional<int64_t> parse_retry_after_ms(std::string_view value_in, int64_t now_unix_ms) {
  std::string value(value_in);
  Poco::trimInPlace(value);
  if (value.empty() || has_control_characters(value)) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string::npos) {
    if (value.size() > 9) return std::nullopt;  // more than 31 years: not a delay anyone means
    return std::stoll(value) * 1000;
  }
  // Poco's parser is lenient (it "parses" any text): the shape of each of
  // RFC 9110's three date forms picks the format first.
  static const std::regex imf_fixdate(R"(^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex rfc850_date(R"(^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$)");
  static const std::regex asctime_date(R"(^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$)");
  const char* format = nullptr;
  if (std::regex_match(value, imf_fixdate)) {
    format = Poco::DateTimeFormat::HTTP_FORMAT.c_str();
  } else if (std::regex_match(value, rfc850_date)) {
    format = Poco::DateTimeFormat::RFC850_FORMAT.c_str();
  } else if (std::regex_match(value, asctime_date)) {
    format = Poco::DateTimeFormat::ASCTIME_FORMAT.c_str();
  } else {
    return std::nullopt;
  }
  Poco::DateTime date;
  int tzd = 0;
  if (!Poco::DateTimeParser::tryParse(format, value, date, tzd)) return std::nullopt;
  date.makeUTC(tzd);
  const int64_t at_ms = date.timestamp().epochMicroseconds() / 1000;
  return at_ms > now_unix_ms ? at_ms - now_unix_ms : 0;
}

std::optional<int64_t> parse_retry_after_ms(std::string_view value) {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  return parse_retry_after_ms(value, now_ms);
}

bool has_control_characters(std::string_view text) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool is_loopback_host(std::string_view host_in) {
  std::string host = Poco::toLower(std::string(host_in));
  if (!host.empty() && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0)) return true;
  Poco::Net::IPAddress address;
  return Poco::Net::IPAddress::tryParse(host, address) && address.isLoopback();
}

bool is_wire_safe_url_path(std::string_view path) {
  auto is_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    if (std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos) continue;
    if (c == '%' && i + 2 < path.size() && is_hex(path[i + 1]) && is_hex(path[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace wep::transport
