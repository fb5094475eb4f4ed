// Text rules shared by HTTP transports (library wep::transport_http): what a
// reply may put into a verdict's reason, Retry-After, and what config text
// may reach the wire. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wep::transport {

// A short, single-line, printable-ASCII excerpt of a reply body for a
// verdict's reason and stats: at most `max_bytes` of it, every byte outside
// printable ASCII (control characters, escape sequences, UTF-8) replaced by
// '?', runs of white space collapsed, "..." when cut, "(empty body)" when
// empty. Safe to log and to show in a terminal.
std::string sanitized_excerpt(std::string_view body, size_t max_bytes = 200);

// Retry-After (RFC 9110 10.2.3) as milliseconds after `now_unix_ms`: either
// delta-seconds or an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and
// asctime forms), parsed with Poco's DateTimeParser. A date in the past gives
// 0. nullopt for anything else (the caller then uses its own backoff).
std::optional<int64_t> parse_retry_after_ms(std::string_view value, int64_t now_unix_ms);
// The same against the system clock.
std::optional<int64_t> parse_retry_after_ms(std::string_view value);

// True when `text` holds a C0 control character (U+0000..U+001F) or DEL:
// such config text could split a header or a request line.
bool has_control_characters(std::string_view text);

// True for a host that can only be this machine: "localhost" (and names
// under ".localhost"), 127.0.0.0/8 and ::1. Plain http is allowed only there.
bool is_loopback_host(std::string_view host);

// True when `path` is a URL path as it may appear on the wire: "/" segments
// of RFC 3986 pchars (unreserved, sub-delims, ':' and '@') and "%XX" escapes,
// which stay escaped (never decoded into the request line).
bool is_wire_safe_url_path(std::string_view path);

}  // namespace wep::transport
