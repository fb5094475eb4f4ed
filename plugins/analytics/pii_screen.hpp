// The PII screen: whether a property value looks like personal data or a
// secret. Deliberately eager (privacy first): a false positive only loses one
// property value, a false negative leaks it. The rules, in the order they are
// checked, are documented rule by rule in README.md ("The PII screen") and
// pinned by tests/analytics/pii_screen_test.cpp.
//
// Text is first folded to ASCII for screening (never for storage): decimal
// digits of other scripts (Arabic-Indic, Devanagari, full-width, ...) become
// 0-9, dash variants (en/em dash, minus, ...) '-', space variants (no-break,
// thin, ideographic, ...) ' ', ideographic and full-width full stops '.', the
// full-width forms of ASCII their ASCII letter, and any other non-ASCII
// character a letter, so internationalised domain names stay domain-like.
//
// Pure functions: no state, thread-safe, no allocation beyond the folded copy
// of non-ASCII text.
#pragma once

#include <cstdint>
#include <string_view>

namespace wep::analytics {

enum class PiiKind {
  none,
  email,        // <local>@<domain>
  phone,        // phone-number-like digit groups (strings), or phone-length integers (numbers)
  ip_address,   // IPv4 or IPv6 address, with or without a port
  url,          // <scheme>://, //host, www., mailto:/tel:, host:port, host/path
  long_number,  // 7 or more digits in a string (ids, card numbers, UUIDs, dates)
  mac_address,  // six hex pairs with ':' or '-', or three hex quads with '.'
  secret,       // "Bearer ...", JWT-shaped, well-known key prefixes, long high-entropy tokens
  card_number,  // an integer of 13..19 digits with a card prefix (2-6) and a valid Luhn check digit
};

// What a string property value looks like.
PiiKind classify_pii(std::string_view text);

// What an integer property value looks like, given its magnitude (absolute
// value): card_number, phone or none. Numbers that look like Unix times in
// milliseconds (years 2000..2100) are not phone numbers.
PiiKind classify_pii_integer(uint64_t magnitude);

}  // namespace wep::analytics
