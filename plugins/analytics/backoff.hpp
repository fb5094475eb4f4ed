// Backoff: exponential backoff with full jitter, used by the flusher between
// failed delivery attempts.
//
// After the n-th consecutive failure (n = 0 for the first) the delay is drawn
// uniformly from [0, min(max_ms, initial_ms * 2^n)] ("full jitter"), so many
// clients that failed together do not retry together. A server-requested
// delay (Retry-After) replaces the draw but is held within
// [initial_ms, max_ms]: a "Retry-After: 0" or an HTTP-date in the past (a
// device clock ahead of the server's) never makes a tight loop, and a server
// asking for hours never parks rows longer than the configured maximum.
//
// Thread safety: none; owned by the flusher thread. Header-only on purpose
// (tiny, and unit-testable without the plugin).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace wep::analytics {

class Backoff {
 public:
  // initial_ms >= 1 and initial_ms <= max_ms are the config's invariants; a
  // zero initial_ms is treated as 1. `seed` makes the jitter reproducible.
  Backoff(uint32_t initial_ms, uint32_t max_ms, uint64_t seed)
      : initial_ms_(std::max<uint32_t>(initial_ms, 1)), max_ms_(std::max(max_ms, initial_ms_)), random_(seed) {}

  // The upper bound of the next draw: min(max_ms, initial_ms * 2^failures).
  uint64_t ceiling_ms() const {
    uint64_t ceiling = initial_ms_;
    for (uint32_t i = 0; i < failures_ && ceiling < max_ms_; ++i) ceiling *= 2;
    return std::min<uint64_t>(ceiling, max_ms_);
  }

  // The delay before the next attempt after a transient failure. When the
  // server asked for a delay (retry_after_ms >= 0) it is used instead of the
  // draw, held within [initial_ms, max_ms]. Counts the failure either way.
  std::chrono::milliseconds next_delay(int64_t retry_after_ms = -1) {
    uint64_t delay_ms;
    if (retry_after_ms >= 0) {
      delay_ms = std::clamp<uint64_t>(static_cast<uint64_t>(retry_after_ms), initial_ms_, max_ms_);
    } else {
      std::uniform_int_distribution<uint64_t> draw(0, ceiling_ms());
      delay_ms = draw(random_);
    }
    if (failures_ < 64) ++failures_;
    return std::chrono::milliseconds(delay_ms);
  }

  // The delay after a non-transient failure (auth, missing table): the cap.
  std::chrono::milliseconds max_delay() {
    if (failures_ < 64) ++failures_;
    return std::chrono::milliseconds(max_ms_);
  }

  // A delivery succeeded (or connectivity came back): start over.
  void reset() { failures_ = 0; }

  uint32_t failures() const { return failures_; }
  uint32_t initial_ms() const { return initial_ms_; }
  uint32_t max_ms() const { return max_ms_; }

 private:
  uint32_t initial_ms_;
  uint32_t max_ms_;
  uint32_t failures_ = 0;
  std::mt19937_64 random_;
};

}  // namespace wep::analytics
