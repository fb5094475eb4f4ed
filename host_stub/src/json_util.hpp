// Small JSON helpers (RapidJSON stays inside the .cpp files).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wep::host_stub {

// Parses `text` (strict JSON, UTF-8 validated) and returns it re-serialised
// compactly, or nullopt with `error` set to a reason with the byte offset.
// With require_object, anything but a JSON object is refused too.
std::optional<std::string> compact_json(std::string_view text, bool require_object, std::string& error);

// `text` as a JSON string literal (with quotes and escapes).
std::string json_quote(std::string_view text);

}  // namespace wep::host_stub
