// The analytics plugin's stats as the JSON object stats_json() returns (the
// README lists every field).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "stats.hpp"

namespace wep::analytics {

// What the stats show besides the counters in Stats.
struct StatsView {
  std::optional<int64_t> pending;           // rows queued; nothing: unreadable now
  std::optional<int64_t> dead_letter_rows;  // rows dead-lettered; nothing: unreadable now
  bool enabled = false;                     // analytics_enabled as applied
  bool online = false;
  std::string database;  // the queue file
};

std::string stats_json(const Stats& stats, const StatsView& view);

}  // namespace wep::analytics
