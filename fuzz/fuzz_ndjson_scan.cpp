// libFuzzer target: the NDJSON recovery scan. The input is a file's bytes;
// it is scanned whole and again in chunks whose sizes come from the input,
// and both scans must agree (rows, line ends, torn tail, foreign lines), with
// the complete part ending right after a '\n'.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ndjson_scan.hpp"

namespace {

struct Seen {
  std::vector<std::pair<std::string, uint64_t>> rows;
};

wep::ndjson::LineScanner scanner(Seen& seen, uint64_t base) {
  return wep::ndjson::LineScanner(base, [&seen](std::string_view id, uint64_t end) { seen.rows.emplace_back(id, end); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Seen whole_seen, chunked_seen;
  auto whole = scanner(whole_seen, 100);
  whole.feed(bytes);
  auto chunked = scanner(chunked_seen, 100);
  size_t at = 0;
  for (size_t i = 0; at < size; ++i) {
    const size_t chunk = 1 + (static_cast<unsigned char>(bytes[i % size]) % 17);
    const size_t take = chunk < size - at ? chunk : size - at;
    chunked.feed(bytes.substr(at, take));
    at += take;
  }
  if (whole_seen.rows != chunked_seen.rows || whole.complete_end() != chunked.complete_end() ||
      whole.torn_bytes() != chunked.torn_bytes() || whole.foreign_lines() != chunked.foreign_lines() ||
      whole.first_foreign_line() != chunked.first_foreign_line())
    std::abort();
  if (whole.complete_end() > 100 && bytes[whole.complete_end() - 100 - 1] != '\n') std::abort();
  if (whole.complete_end() + whole.torn_bytes() != 100 + size) std::abort();
  for (const auto& [id, end] : whole_seen.rows) {
    if (id.empty() || end > 100 + size) std::abort();
  }
  return 0;
}
