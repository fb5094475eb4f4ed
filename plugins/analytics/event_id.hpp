// The stable event id of a queued row.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wep::analytics {

// A name-based (SHA-1, version 5, RFC 4122 section 4.3) UUID of the row's
// user id ("" when NULL), row id and created_at under a fixed project
// namespace: the spec's table stays as written and every re-send of the row
// carries the same id, for server-side de-duplication. Row ids never repeat
// (AUTOINCREMENT) and created_at tells apart a row of a recreated database.
std::string event_id_for(std::string_view user_id, int64_t row_id, std::string_view created_at);

}  // namespace wep::analytics
