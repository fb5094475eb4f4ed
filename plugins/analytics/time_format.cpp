#include "time_format.hpp"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Timestamp.h>

#include <chrono>

namespace wep::analytics {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string created_at_from_ms(int64_t unix_ms) {
  return Poco::DateTimeFormatter::format(Poco::Timestamp(unix_ms * 1000), "%Y-%m-%dT%H:%M:%S.%i");
}

std::string iso8601_utc(std::string_view stored_created_at) {
  std::string out;
  iso8601_utc(stored_created_at, out);
  return out;
}

void iso8601_utc(std::string_view stored_created_at, std::string& out) {
  // Fast path: the spec's own format "YYYY-MM-DDTHH:MM:SS.mmm" (UTC).
  if (stored_created_at.size() == 23 && stored_created_at[10] == 'T' && stored_created_at[19] == '.') {
    out.assign(stored_created_at);
    out += 'Z';
    return;
  }
  Poco::DateTime parsed;
  int zone_differential = 0;
  if (Poco::DateTimeParser::tryParse(std::string(stored_created_at), parsed, zone_differential)) {
    parsed.makeUTC(zone_differential);
    out = Poco::DateTimeFormatter::format(parsed, "%Y-%m-%dT%H:%M:%S.%iZ");
    return;
  }
  out.assign(stored_created_at);
}

}  // namespace wep::analytics
