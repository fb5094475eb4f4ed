// What a PostgREST answer to the transport's insert means for the batch: a
// pure function of the status, the body and Retry-After, table-tested in
// tests/backend/postgrest_status_test.cpp.
//
//   201                     DELIVERED: the only status PostgREST gives an insert
//                           with Prefer: return=minimal
//   other 2xx, 3xx, 1xx     RETRY_LATER: not PostgREST's answer (a captive
//                           portal's 200 page, a proxy's redirect); rows kept
//   408, 429, 5xx           RETRY_LATER, with Retry-After if the server sent one
//                           (5xx covers 57014 statement timeout, 503, 504)
//   413                     TOO_LARGE: split the batch
//   400, 409, 422           REJECTED, every row flagged: the flusher splits to
//                           tell bad rows from a systemic failure
//   401, 403, 404, others   FAILED: auth, grants/RLS, missing table, contract
// Every reason but DELIVERED's names the status and the url and carries a
// sanitised excerpt of the body (wep::transport::sanitized_excerpt).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wep::supabase {

struct StatusVerdict {
  int32_t kind = 0;  // WEP_VERDICT_*
  int64_t retry_after_ms = -1;
  std::string reason;  // empty for DELIVERED
};

// `retry_after` is the Retry-After header's value, if any; `now_unix_ms` the
// clock its HTTP-date form is read against.
StatusVerdict verdict_for_status(int status, std::string_view body, std::optional<std::string_view> retry_after,
                                 int64_t now_unix_ms, std::string_view display_url, std::string_view table);

}  // namespace wep::supabase
