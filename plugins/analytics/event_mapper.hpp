// Mutation -> analytics row, with privacy by construction.
//
// Only mapped mutation types are recorded; only the keys listed for the type
// are kept, and only when their value is a boolean, a number or a short
// string that does not look like personal data (pii_screen.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "mapping_counts.hpp"
#include "pii_screen.hpp"
#include "queue_store.hpp"
#include "stats.hpp"

namespace wep::analytics {

// A string property is kept only if it is at most this many bytes long.
inline constexpr size_t kMaxPropertyStringBytes = 64;

// What a mutation maps to, before it becomes a row: the row's event type
// and its properties as JSON (nullopt: none kept, stored as NULL), and what
// the mapping dropped. The views stay valid until the mapper's next call
// (event_type: as long as the config).
struct MappedEvent {
  std::string_view event_type;
  std::optional<std::string_view> properties_json;
  MappingCounts counts;
};

// Maps events for one plugin instance. Not thread-safe: each thread that
// maps uses its own mapper (the host's lane, the writer, the catch-up's reader); the
// counters in Stats are shared atomics.
class EventMapper {
 public:
  // `user_id` is the host's pseudonymous id (nullopt: rows get NULL).
  // `config` and `stats` must outlive the mapper.
  EventMapper(const AnalyticsConfig& config, std::optional<std::string> user_id, Stats& stats);
  // Another mapper with the same config, user id and stats, for another
  // thread (its buffers are its own).
  EventMapper(const EventMapper& other);
  EventMapper& operator=(const EventMapper&) = delete;
  ~EventMapper();

  // False (counted in stats as an unmapped type) when mutations of this type
  // are not recorded. map() and map_event() check this themselves.
  bool check_type(std::string_view mutation_type);

  // Fills `row` from one committed mutation and returns true, or returns
  // false (unmapped type, payload not a JSON object) when the mutation is
  // not recorded; what it dropped is counted in stats either way. Same as
  // map_event, count, then fill_row.
  bool map(std::string_view mutation_type, std::string_view payload_json, int64_t committed_at_ms, NewRow& row);

  // The mapping alone (the JSON work): fills `out` and returns true, or
  // returns false as map() does. Counts nothing: what it dropped is in
  // out.counts, for count() once the event is taken (an event the caller
  // hands on to be mapped again later is then counted only once).
  bool map_event(std::string_view mutation_type, std::string_view payload_json, MappedEvent& out);

  // Adds what one mapping dropped to the stats counters.
  void count(const MappingCounts& counts);

  // Fills `row` from a mapped event: its type and properties, the user id,
  // created_at from committed_at_ms. Reuses the row's strings.
  void fill_row(std::string_view event_type, std::optional<std::string_view> properties_json, int64_t committed_at_ms,
                NewRow& row);

 private:
  const std::string& created_at(int64_t committed_at_ms);
  // Notes a value the screen refused in `counts` (true); false for PiiKind::none.
  static bool note_pii(PiiKind kind, MappingCounts& counts);

  struct Buffers;  // RapidJSON buffers reused between calls (kept out of this header)

  const AnalyticsConfig& config_;
  std::optional<std::string> user_id_;
  Stats& stats_;
  std::unique_ptr<Buffers> buffers_;
  int64_t cached_second_ = INT64_MIN;
  std::string cached_created_at_;  // "YYYY-MM-DDTHH:MM:SS.mmm" of the last call
};

}  // namespace wep::analytics
