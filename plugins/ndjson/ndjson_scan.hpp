// The NDJSON recovery scan: reads a file's bytes in chunks of any size and
// tells, line by line, which lines are rows this transport wrote (a JSON
// object with a non-empty string "event_id" at its top level) and where the
// last complete line ends. Memory is bounded: a line is buffered up to
// kMaxRowLineBytes, a longer one is skipped unbuffered (and counts as
// foreign); parsing is iterative and depth-bounded (wep::json).
//
// Not thread-safe (one scan per instance); no I/O of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace wep::ndjson {

// Longest line accepted as a row. Rows carry short property values, so real
// lines are far shorter; the bound only caps the scan's memory.
inline constexpr size_t kMaxRowLineBytes = 4 * 1024 * 1024;

// The top-level "event_id" of one NDJSON line, or "" when the line is not a
// row (not JSON, not an object, no non-empty string event_id, too deep).
std::string row_event_id(std::string_view line);

class LineScanner {
 public:
  // `on_row(event_id, line_end_offset)` is called for every complete row line
  // in file order; `line_end_offset` is the offset just past its '\n'.
  // `base_offset` is the file offset of the first byte fed.
  LineScanner(uint64_t base_offset, std::function<void(std::string_view event_id, uint64_t line_end)> on_row);

  // Feeds the next bytes of the file.
  void feed(std::string_view bytes);

  // Where the last complete line ends (base_offset if none): everything after
  // it is an unterminated (torn) last line.
  uint64_t complete_end() const { return complete_end_; }
  // Bytes fed so far after complete_end().
  uint64_t torn_bytes() const { return offset_ - complete_end_; }
  uint64_t rows() const { return rows_; }
  // Complete lines that are not rows (empty lines included), and the 1-based
  // number (counted from base_offset) of the first one (0: none).
  uint64_t foreign_lines() const { return foreign_lines_; }
  uint64_t first_foreign_line() const { return first_foreign_line_; }

 private:
  void end_line();

  std::function<void(std::string_view, uint64_t)> on_row_;
  std::string line_;  // the current line, while it fits kMaxRowLineBytes
  bool line_too_long_ = false;
  uint64_t offset_ = 0;  // file offset of the next byte
  uint64_t complete_end_ = 0;
  uint64_t lines_ = 0;
  uint64_t rows_ = 0;
  uint64_t foreign_lines_ = 0;
  uint64_t first_foreign_line_ = 0;
};

}  // namespace wep::ndjson
