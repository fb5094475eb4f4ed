#include "event_id.hpp"

#include <Poco/SHA1Engine.h>
#include <Poco/UUID.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace wep::analytics {
namespace {

// The fixed namespace of event ids (a random v4 UUID chosen once for this
// project). Changing it would change every event id, so it never changes.
constexpr const char* kEventIdNamespace = "a93df040-24d9-45a6-8a92-70e35969382f";

}  // namespace

std::string event_id_for(std::string_view user_id, int64_t row_id, std::string_view created_at) {
  // What Poco::UUIDGenerator::createFromName does, without constructing a
  // generator per row (a generator seeds a random source on construction,
  // about 3 us per row on the flush path).
  static const std::array<char, 16> namespace_bytes = [] {
    std::array<char, 16> bytes{};
    Poco::UUID(kEventIdNamespace).copyTo(bytes.data());
    return bytes;
  }();
  std::array<char, 24> row_text{};
  const auto row_text_end = std::to_chars(row_text.data(), row_text.data() + row_text.size(), row_id).ptr;
  Poco::SHA1Engine sha1;
  sha1.update(namespace_bytes.data(), namespace_bytes.size());
  sha1.update(user_id.data(), user_id.size());
  sha1.update("\n", 1);
  sha1.update(row_text.data(), static_cast<size_t>(row_text_end - row_text.data()));
  sha1.update("\n", 1);
  sha1.update(created_at.data(), created_at.size());
  const Poco::DigestEngine::Digest& digest = sha1.digest();
  std::array<unsigned char, 16> bytes{};
  std::copy_n(digest.begin(), bytes.size(), bytes.begin());
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x50);  // version 5 (name-based, SHA-1)
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  // The canonical text form (lower-case hex, 8-4-4-4-12), as
  // Poco::UUID::toString() writes it, without its per-field appends.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(36, '-');
  size_t at = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++at;  // keep the '-'
    text[at++] = kHex[bytes[i] >> 4];
    text[at++] = kHex[bytes[i] & 0x0F];
  }
  return text;
}

}  // namespace wep::analytics
