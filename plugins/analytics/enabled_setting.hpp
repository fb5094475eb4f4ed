// The host setting that gates everything the analytics plugin records and
// sends: its key and how its JSON value is read. The one place the plugin
// (the bus handler, start-up) and the writer (the event log's setting
// changes) interpret it.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace wep::analytics {

inline constexpr std::string_view kEnabledKey = "analytics_enabled";

// The JSON literal true or false, with JSON whitespace around it; nullopt for
// anything else (the callers then treat it as false: privacy first when a
// value is unclear, and may warn).
inline std::optional<bool> parse_enabled_setting(std::string_view value_json) {
  constexpr std::string_view kWhitespace = " \t\r\n";
  const auto first = value_json.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return std::nullopt;
  const auto last = value_json.find_last_not_of(kWhitespace);
  const std::string_view literal = value_json.substr(first, last - first + 1);
  if (literal == "true") return true;
  if (literal == "false") return false;
  return std::nullopt;
}

// parse_enabled_setting, an unclear value counting as false.
inline bool enabled_from_json(std::string_view value_json) { return parse_enabled_setting(value_json).value_or(false); }

}  // namespace wep::analytics
