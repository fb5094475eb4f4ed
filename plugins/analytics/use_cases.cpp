#include "use_cases.hpp"

#include <algorithm>

namespace wep::analytics {

EnqueueAnalyticsEventUseCase::Outcome EnqueueAnalyticsEventUseCase::execute(std::string_view mutation_type,
                                                                            std::string_view payload_json,
                                                                            int64_t committed_at_ms,
                                                                            int64_t sequence) noexcept {
  if (!log_backed_ && !enabled()) {
    stats_.dropped_disabled.fetch_add(1, std::memory_order_relaxed);
    return Outcome::disabled;
  }
  bool pushed = false;
  try {
    HandOffBatch::Kind kind = HandOffBatch::Kind::mutation;
    std::string_view type = mutation_type;
    std::string_view payload = payload_json;
    // While disabled (log-backed: the writer decides from the log's order)
    // the event goes as it came: mapped only if the writer records it.
    const bool map_here = mapper_ && enabled();
    MappedEvent mapped;
    if (map_here) {
      if (!mapper_->map_event(mutation_type, payload_json, mapped)) {
        kind = HandOffBatch::Kind::not_recorded;
        type = {};
        payload = {};
      } else {
        kind = mapped.properties_json ? HandOffBatch::Kind::mapped : HandOffBatch::Kind::mapped_bare;
        type = mapped.event_type;
        payload = mapped.properties_json.value_or(std::string_view());
      }
    }
    // What the mapping dropped is counted by the writer if it records the
    // event (not if it is dropped, refused here, or read from the log instead).
    pushed = buffer_.try_push(kind, type, payload, committed_at_ms, sequence, map_here ? &mapped.counts : nullptr);
  } catch (...) {
    pushed = false;  // out of memory growing the arena: treated as full
  }
  if (!pushed && log_backed_) {
    stats_.catch_up_deferred.fetch_add(1, std::memory_order_relaxed);
    return Outcome::deferred_to_log;
  }
  if (!pushed) {
    stats_.dropped_buffer_full.fetch_add(1, std::memory_order_relaxed);
    return Outcome::buffer_full;
  }
  stats_.accepted.fetch_add(1, std::memory_order_relaxed);
  return Outcome::accepted;
}

void WriterProgress::advance(uint64_t ticket) {
  {
    std::lock_guard lock(mutex_);
    if (advanced_ && ticket <= stored_) return;
    advanced_ = true;
    stored_ = std::max(stored_, ticket);
  }
  changed_.notify_all();
}

void WriterProgress::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

bool WriterProgress::wait_for(uint64_t ticket) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return (advanced_ && stored_ >= ticket) || closed_; });
  return advanced_ && stored_ >= ticket;
}

int64_t PendingAnalyticsCountUseCase::execute() {
  progress_.wait_for(buffer_.accepted());
  return store_.with([](QueueStore& store) { return store.count(); });
}

void FlushAnalyticsQueueUseCase::mark_delivered(std::span<const IdRange> ranges) {
  store_.remove(ranges);
  int64_t rows = 0;
  for (const IdRange& range : ranges) rows += range.size();
  stats_.delivered.fetch_add(rows, std::memory_order_relaxed);
}

void FlushAnalyticsQueueUseCase::dead_letter(std::span<const int64_t> ids, std::string_view reason) {
  store_.dead_letter(ids, reason);
  stats_.dead_lettered.fetch_add(static_cast<int64_t>(ids.size()), std::memory_order_relaxed);
}

}  // namespace wep::analytics
