#include "hand_off_buffer.hpp"

#include <algorithm>
#include <utility>

namespace wep::analytics {

HandOffBuffer::HandOffBuffer(size_t max_events, size_t max_bytes) : max_events_(max_events), max_bytes_(max_bytes) {
  // Pre-size the producer's side so early events do not pay for growth.
  pending_.events_.reserve(std::min<size_t>(max_events, 65536));
  pending_.arena_.reserve(std::min<size_t>(max_bytes, size_t{1} << 20));
}

bool HandOffBuffer::try_push(HandOffBatch::Kind kind, std::string_view type, std::string_view payload_json,
                             int64_t committed_at_ms, int64_t sequence, const MappingCounts* counts) {
  const bool has_counts = counts && counts->any();
  const size_t counts_size = has_counts ? sizeof(MappingCounts) : 0;
  bool wake_consumer = false;
  {
    std::lock_guard lock(mutex_);
    if (stop_) return false;
    if (pending_.events_.size() >= max_events_ ||
        pending_.arena_.size() + type.size() + payload_json.size() + counts_size > max_bytes_) {
      ++refused_;
      return false;
    }
    std::string& arena = pending_.arena_;
    const size_t type_offset = arena.size();
    arena.append(type);
    const size_t payload_offset = arena.size();
    arena.append(payload_json);
    if (has_counts) arena.append(reinterpret_cast<const char*>(counts), counts_size);  // right after the payload
    pending_.events_.push_back(
        {kind, has_counts, type_offset, type.size(), payload_offset, payload_json.size(), sequence, committed_at_ms});
    ++accepted_;
    // Only the first event after the consumer fell asleep pays for a wake-up.
    wake_consumer = std::exchange(consumer_waiting_, false);
  }
  if (wake_consumer) wake_.notify_one();
  return true;
}

bool HandOffBuffer::push_enabled_changed(std::string_view value_json) {
  bool wake_consumer = false;
  {
    std::lock_guard lock(mutex_);
    if (stop_) return false;
    std::string& arena = pending_.arena_;
    const size_t payload_offset = arena.size();
    arena.append(value_json);
    pending_.events_.push_back(
        {HandOffBatch::Kind::enabled_changed, false, payload_offset, 0, payload_offset, value_json.size(), 0, 0});
    ++accepted_;
    wake_consumer = std::exchange(consumer_waiting_, false);
  }
  if (wake_consumer) wake_.notify_one();
  return true;
}

uint64_t HandOffBuffer::accepted() const {
  std::lock_guard lock(mutex_);
  return accepted_;
}

uint64_t HandOffBuffer::take(HandOffBatch& out, std::chrono::steady_clock::time_point deadline, bool* stopped) {
  out.clear();
  std::unique_lock lock(mutex_);
  while (pending_.events_.empty() && !stop_) {
    consumer_waiting_ = true;
    if (wake_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  consumer_waiting_ = false;
  std::swap(out.arena_, pending_.arena_);
  std::swap(out.events_, pending_.events_);
  out.refused_ = std::exchange(refused_, 0);
  if (stopped) *stopped = stop_;
  return accepted_;
}

void HandOffBuffer::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

size_t HandOffBuffer::buffered() const {
  std::lock_guard lock(mutex_);
  return pending_.events_.size();
}

}  // namespace wep::analytics
