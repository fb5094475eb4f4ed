#include "use_cases.hpp"

namespace analytics {

EnqueueAnalyticsEventUseCase::Outcome EnqueueAnalyticsEventUseCase::execute(std::string_view mutation_type,
                                                                            std::string_view payload_json,
                                                                            int64_t committed_at_ms) noexcept {
  if (!enabled()) {
    stats_.dropped_disabled.fetch_add(1, std::memory_order_relaxed);
    return Outcome::disabled;
  }
  bool pushed = false;
  try {
    pushed = buffer_.try_push(mutation_type, payload_json, committed_at_ms);
  } catch (...) {
    pushed = false;  // out of memory growing the arena: treated as full
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
    if (ticket <= stored_) return;
    stored_ = ticket;
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
  changed_.wait(lock, [&] { return stored_ >= ticket || closed_; });
  return stored_ >= ticket;
}

uint64_t WriterProgress::stored() const {
  std::lock_guard lock(mutex_);
  return stored_;
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

}  // namespace analytics
