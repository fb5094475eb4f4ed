// Time as the analytics queue stores it and as the wire carries it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wep::analytics {

// The system clock as Unix epoch milliseconds.
int64_t unix_now_ms();

// Unix epoch milliseconds -> the spec's created_at format, UTC:
// "2026-11-20T10:00:00.123" (what strftime('%Y-%m-%dT%H:%M:%f') writes).
std::string created_at_from_ms(int64_t unix_ms);

// "2026-11-20T10:00:00.123" -> "2026-11-20T10:00:00.123Z" (ISO 8601 UTC).
// Other forms a person or SQLite may have written are parsed and converted;
// unparseable text passes unchanged. The second form writes into `out`,
// reusing its capacity.
std::string iso8601_utc(std::string_view stored_created_at);
void iso8601_utc(std::string_view stored_created_at, std::string& out);

}  // namespace wep::analytics
