#include "postgrest_status.hpp"

#include <wep/plugin_api.h>

#include <wep/support/http_text.hpp>

namespace wep::supabase {

StatusVerdict verdict_for_status(int status, std::string_view body, std::optional<std::string_view> retry_after,
                                 int64_t now_unix_ms, std::string_view display_url, std::string_view table) {
  StatusVerdict verdict;
  if (status == 201) {
    verdict.kind = WEP_VERDICT_DELIVERED;
    return verdict;
  }
  const std::string answered = "HTTP " + std::to_string(status) + " from " + std::string(display_url) + ": ";
  const std::string excerpt = wep::transport::sanitized_excerpt(body);
  const std::string table_name(table);
  if ((status >= 100 && status < 200) || (status >= 200 && status < 400)) {
    verdict.kind = WEP_VERDICT_RETRY_LATER;
    verdict.reason = answered + "not PostgREST's answer to an insert (201; a captive portal or proxy?): " + excerpt;
  } else if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
    verdict.kind = WEP_VERDICT_RETRY_LATER;
    if (retry_after)
      verdict.retry_after_ms = wep::transport::parse_retry_after_ms(*retry_after, now_unix_ms).value_or(-1);
    verdict.reason = answered + excerpt;
  } else if (status == 413) {
    verdict.kind = WEP_VERDICT_TOO_LARGE;
    verdict.reason = answered + "batch too large: " + excerpt;
  } else if (status == 400 || status == 409 || status == 422) {
    verdict.kind = WEP_VERDICT_REJECTED;
    verdict.reason = answered + "rows refused: " + excerpt;
  } else if (status == 401) {
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.reason = answered + "authentication refused: check api_key (the project's publishable key): " + excerpt;
  } else if (status == 403) {
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.reason = answered + "permission denied: the anon role may not insert into '" + table_name +
                     "' (check the grants and the row-level security policy): " + excerpt;
  } else if (status == 404) {
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.reason = answered + "table '" + table_name + "' not found (check table and url): " + excerpt;
  } else {
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.reason = answered + "unexpected answer: " + excerpt;
  }
  return verdict;
}

}  // namespace wep::supabase
