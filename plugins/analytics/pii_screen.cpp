#include "pii_screen.hpp"

#include <arpa/inet.h>

#include <array>
#include <cmath>
#include <cstring>
#include <string>

namespace wep::analytics {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
char lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

// Membership in a small set of ASCII characters, as a table built at compile
// time (the screen runs on every kept string property).
class CharSet {
 public:
  explicit constexpr CharSet(std::string_view members) {
    for (const char c : members) table_[static_cast<unsigned char>(c)] = true;
  }
  constexpr bool contains(char c) const { return table_[static_cast<unsigned char>(c)]; }

 private:
  std::array<bool, 256> table_{};
};

bool starts_with_nocase(std::string_view s, size_t at, std::string_view prefix) {
  if (s.size() - at < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[at + i]) != prefix[i]) return false;
  }
  return true;
}

// ---- folding to ASCII

// The zero of each block of ten decimal digits outside ASCII that is folded.
constexpr char32_t kDigitZeros[] = {0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66,
                                    0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810, 0xFF10};

char ascii_equivalent(char32_t cp) {
  for (const char32_t zero : kDigitZeros) {
    if (cp >= zero && cp <= zero + 9) return static_cast<char>('0' + (cp - zero));
  }
  if (cp >= 0xFF01 && cp <= 0xFF5E) return static_cast<char>(cp - 0xFF01 + 0x21);  // full-width ASCII forms
  switch (cp) {
    case 0x2010:  // hyphen
    case 0x2011:  // non-breaking hyphen
    case 0x2012:  // figure dash
    case 0x2013:  // en dash
    case 0x2014:  // em dash
    case 0x2015:  // horizontal bar
    case 0x2212:  // minus sign
    case 0xFE58:  // small em dash
    case 0xFE63:  // small hyphen-minus
      return '-';
    case 0x00A0:  // no-break space
    case 0x2000:
    case 0x2001:
    case 0x2002:
    case 0x2003:
    case 0x2004:
    case 0x2005:
    case 0x2006:
    case 0x2007:
    case 0x2008:
    case 0x2009:
    case 0x200A:
    case 0x200B:
    case 0x202F:
    case 0x205F:
    case 0x3000:  // ideographic space
      return ' ';
    case 0x3002:  // ideographic full stop (an IDN label separator)
    case 0xFF61:  // half-width ideographic full stop
    case 0x2024:  // one dot leader
    case 0xFE52:  // small full stop
      return '.';
    case 0xFE6B:  // small commercial at
      return '@';
    case 0x2215:  // division slash
    case 0x2044:  // fraction slash
      return '/';
    case 0xFE55:  // small colon
      return ':';
    default:
      return 'x';  // a letter: any other script's letters keep a domain name domain-like
  }
}

// Decodes one UTF-8 sequence at `s[i]`; returns its length (0: not a valid
// sequence) and the code point in `cp`.
size_t decode_utf8(std::string_view s, size_t i, char32_t& cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  return length;
}

bool is_ascii(std::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string fold_to_ascii(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t length = decode_utf8(text, i, cp);
    out.push_back(length == 0 ? 'x' : ascii_equivalent(cp));
    i += length == 0 ? 1 : length;
  }
  return out;
}

// ---- rules (on folded text)

constexpr CharSet kEmailLocalPunctuation("._%+-'");
constexpr CharSet kTokenPunctuation("_-+/=~");
constexpr CharSet kPhonePunctuation(" +()-./");
// The first characters, in either case, of what looks_like_url looks for at
// a word's start ("www.", schemes): a word starting otherwise needs no
// comparison.
constexpr CharSet kUrlWordStarts("wWmMtTsScCxX");

bool is_email_local_char(char c) { return is_alnum(c) || kEmailLocalPunctuation.contains(c); }
bool is_domain_char(char c) { return is_alnum(c) || c == '-' || c == '.'; }

// A host name: labels of letters, digits and '-', the last one (the TLD) at
// least two characters starting with a letter; or "localhost".
bool is_host_name(std::string_view host) {
  while (!host.empty() && (host.back() == '.' || host.back() == '-')) host.remove_suffix(1);
  while (!host.empty() && host.front() == '.') host.remove_prefix(1);
  if (host.size() == 9 && starts_with_nocase(host, 0, "localhost")) return true;
  const size_t dot = host.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const std::string_view tld = host.substr(dot + 1);
  return tld.size() >= 2 && is_alpha(tld[0]);
}

bool looks_like_email(std::string_view s) {
  for (size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    size_t start = at;
    while (start > 0 && is_email_local_char(s[start - 1])) --start;
    const size_t local_size = at - start;
    if (local_size == 0) continue;
    size_t end = at + 1;
    while (end < s.size() && is_domain_char(s[end])) ++end;
    std::string_view domain = s.substr(at + 1, end - at - 1);
    while (!domain.empty() && (domain.back() == '.' || domain.back() == '-')) domain.remove_suffix(1);
    if (domain.empty() || !is_alnum(domain[0])) continue;
    if (is_host_name(domain)) return true;
    // A single label ("user@intranet"): taken when both sides are at least two
    // characters and the label starts with a letter, so "a@b" and "x@2x" pass.
    if (domain.find('.') == std::string_view::npos && local_size >= 2 && domain.size() >= 2 && is_alpha(domain[0]))
      return true;
  }
  return false;
}

bool looks_like_url(std::string_view s) {
  for (size_t p = s.find("://"); p != std::string_view::npos; p = s.find("://", p + 1)) {
    if (p > 0 && is_alpha(s[p - 1])) return true;  // <scheme>://
  }
  for (size_t i = 0; i < s.size(); ++i) {
    const bool word_start = i == 0 || !is_alpha(s[i - 1]);
    if (!word_start || !kUrlWordStarts.contains(s[i])) continue;
    if (starts_with_nocase(s, i, "www.") && i + 4 < s.size() && is_alnum(s[i + 4])) return true;
    // Schemes without "//" that name a person's address.
    for (const std::string_view scheme : {"mailto:", "tel:", "sms:", "callto:", "xmpp:", "sip:"}) {
      if (starts_with_nocase(s, i, scheme) && i + scheme.size() < s.size() && s[i + scheme.size()] != ' ') return true;
    }
  }
  // A host name followed by a port, a path, a query or a fragment:
  // "example.com/reset?token=abc", "//example.com/x", "localhost:8080".
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c != '/' && c != '?' && c != '#' && c != ':') continue;
    if (c == ':' && !(i + 1 < s.size() && is_digit(s[i + 1]))) continue;
    size_t start = i;
    while (start > 0 && is_domain_char(s[start - 1])) --start;
    const std::string_view host = s.substr(start, i - start);
    if (!host.empty() && host.back() != '.' && is_host_name(host)) return true;
  }
  return false;
}

bool looks_like_ipv4(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < s.size() && (is_digit(s[end]) || s[end] == '.')) ++end;
    std::string_view run = s.substr(i, end - i);
    while (!run.empty() && run.back() == '.') run.remove_suffix(1);  // sentence end
    size_t dots = 0;
    for (char c : run) dots += c == '.';
    if (dots == 3 && run.size() <= 15) {
      char text[16];
      std::memcpy(text, run.data(), run.size());
      text[run.size()] = '\0';
      unsigned char address[4];
      if (inet_pton(AF_INET, text, address) == 1) return true;
    }
    i = end;
  }
  return false;
}

bool looks_like_ipv6(std::string_view s) {
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
    size_t colons = 0, digits = 0;
    for (char c : run) {
      colons += c == ':';
      digits += is_digit(c);
    }
    // Two ':' and a digit, or three ':', so that words such as "dead::beef"
    // or "a::b" (valid IPv6 text, but rarely an address) pass.
    if (run.size() >= 3 && run.size() <= 45 && (colons >= 3 || (colons == 2 && digits > 0))) {
      char text[46];
      std::memcpy(text, run.data(), run.size());
      text[run.size()] = '\0';
      unsigned char address[16];
      if (inet_pton(AF_INET6, text, address) == 1) return true;
    }
    i = end;
  }
  return false;
}

// `groups` groups of `width` hex digits separated by one `separator`, at `i`.
bool hex_groups_at(std::string_view s, size_t i, int groups, int width, char separator) {
  for (int g = 0; g < groups; ++g) {
    if (g > 0) {
      if (i >= s.size() || s[i] != separator) return false;
      ++i;
    }
    for (int k = 0; k < width; ++k, ++i) {
      if (i >= s.size() || !is_hex(s[i])) return false;
    }
  }
  return true;
}

bool looks_like_mac_address(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_hex(s[i]) || (i > 0 && is_hex(s[i - 1]))) continue;
    if (hex_groups_at(s, i, 6, 2, ':') || hex_groups_at(s, i, 6, 2, '-') || hex_groups_at(s, i, 3, 4, '.')) return true;
  }
  return false;
}

bool is_token_char(char c) { return is_alnum(c) || kTokenPunctuation.contains(c); }
bool is_base64url_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

// Shannon entropy of `run` in bits per character.
double entropy_bits_per_char(std::string_view run) {
  std::array<int, 128> counts{};
  for (char c : run) ++counts[static_cast<unsigned char>(c) & 0x7F];
  double bits = 0;
  for (const int count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / static_cast<double>(run.size());
    bits -= p * std::log2(p);
  }
  return bits;
}

// Well-known API key prefixes (case-sensitive).
constexpr std::string_view kKeyPrefixes[] = {
    "sk_live_", "sk_test_",    "pk_live_", "pk_test_", "rk_live_", "rk_test_", "whsec_", "ghp_", "gho_", "ghu_", "ghs_",
    "ghr_",     "github_pat_", "glpat-",   "xoxb-",    "xoxp-",    "xoxa-",    "xoxs-",  "AKIA", "ASIA", "AIza"};

bool looks_like_secret(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const bool word_start = i == 0 || !is_token_char(s[i - 1]);
    if (!word_start) continue;
    const char first = s[i];
    // An HTTP credential: "Bearer <token>", "Basic <token>", "Token <token>".
    if (lower(first) == 'b' || lower(first) == 't') {
      for (const std::string_view scheme : {"bearer ", "basic ", "token "}) {
        if (!starts_with_nocase(s, i, scheme)) continue;
        size_t end = i + scheme.size();
        while (end < s.size() && s[end] == ' ') ++end;
        size_t token = 0;
        while (end + token < s.size() && (is_token_char(s[end + token]) || s[end + token] == '.')) ++token;
        if (token >= 8) return true;
      }
    }
    // JWT-shaped: base64url of '{"' ("eyJ"), then '.' and a second segment.
    if (first == 'e' && s.compare(i, 3, "eyJ") == 0) {
      size_t end = i + 3;
      while (end < s.size() && is_base64url_char(s[end])) ++end;
      if (end - i >= 8 && end + 4 < s.size() && s[end] == '.' && is_base64url_char(s[end + 1])) return true;
    }
    // A key prefix followed by at least 8 token characters.
    for (const std::string_view prefix : kKeyPrefixes) {
      if (prefix[0] != first || s.compare(i, prefix.size(), prefix) != 0) continue;
      size_t end = i + prefix.size();
      while (end < s.size() && is_token_char(s[end])) ++end;
      if (end - i - prefix.size() >= 8) return true;
    }
  }
  // A long high-entropy token: a run of at least 20 token characters with a
  // letter, at least 3 digits and at least 3.5 bits of entropy per character
  // (API keys, session ids, hex digests; not snake_case words).
  for (size_t i = 0; i < s.size();) {
    if (!is_token_char(s[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    size_t letters = 0, digits = 0;
    while (end < s.size() && is_token_char(s[end])) {
      letters += is_alpha(s[end]);
      digits += is_digit(s[end]);
      ++end;
    }
    const std::string_view run = s.substr(i, end - i);
    if (run.size() >= 20 && letters > 0 && digits >= 3 && entropy_bits_per_char(run) >= 3.5) return true;
    i = end;
  }
  return false;
}

bool is_phone_char(char c) { return is_digit(c) || kPhonePunctuation.contains(c); }

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

bool luhn_valid(uint64_t number) {
  unsigned sum = 0;
  bool double_it = false;
  for (; number > 0; number /= 10, double_it = !double_it) {
    unsigned digit = static_cast<unsigned>(number % 10);
    if (double_it) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 == 0;
}

// True when no rule can match `text` (ASCII): every rule needs one of
// '@' ':' '/' '.' '?' '#' (emails, URLs and host names, IP addresses, JWTs,
// MAC addresses with ':' or '.'), seven digits (phone numbers, long
// numbers), or at least 12 characters (credentials, key prefixes, MAC
// addresses with '-', high-entropy tokens). Most property values are short
// words that pass here with one look at each character.
bool too_plain_for_any_rule(std::string_view text) {
  constexpr size_t kShortestRuleWithoutMarks = 12;  // "AKIA" + 8
  constexpr CharSet kMarks("@:/.?#");
  if (text.size() >= kShortestRuleWithoutMarks) return false;
  size_t digits = 0;
  for (const char c : text) {
    if (kMarks.contains(c)) return false;
    digits += is_digit(c);
  }
  return digits < 7;
}

}  // namespace

PiiKind classify_pii(std::string_view text) {
  std::string folded;
  if (!is_ascii(text)) {
    folded = fold_to_ascii(text);  // ASCII needs no folding (and no copy)
  } else if (too_plain_for_any_rule(text)) {
    return PiiKind::none;
  }
  const std::string_view s = folded.empty() ? text : std::string_view(folded);
  if (looks_like_email(s)) return PiiKind::email;
  if (looks_like_url(s)) return PiiKind::url;
  if (looks_like_secret(s)) return PiiKind::secret;
  if (looks_like_mac_address(s)) return PiiKind::mac_address;
  if (looks_like_ipv4(s) || looks_like_ipv6(s)) return PiiKind::ip_address;
  return classify_digit_runs(s);
}

PiiKind classify_pii_integer(uint64_t magnitude) {
  int digits = 0;
  uint64_t leading = magnitude;
  for (uint64_t rest = magnitude; rest > 0; rest /= 10) {
    ++digits;
    if (rest < 10) leading = rest;
  }
  // Payment cards: 13..19 digits, issuer prefixes 2 (Mastercard 2-series) to
  // 6 (Discover, UnionPay, Maestro), a valid Luhn check digit.
  if (digits >= 13 && leading >= 2 && leading <= 6 && luhn_valid(magnitude)) return PiiKind::card_number;
  // Unix times in milliseconds, years 2000..2100, are common and not phones.
  constexpr uint64_t kYear2000Ms = 946'684'800'000;
  constexpr uint64_t kYear2100Ms = 4'102'444'800'000;
  if (magnitude >= kYear2000Ms && magnitude <= kYear2100Ms) return PiiKind::none;
  // E.164 numbers with their country code: 11..15 digits; a 10-digit number
  // starting with 2..9 is a North American number without it (a Unix time
  // in seconds starts with 1 until 2033).
  if (digits >= 11 && digits <= 15) return PiiKind::phone;
  if (digits == 10 && leading >= 2) return PiiKind::phone;
  return PiiKind::none;
}

}  // namespace wep::analytics
