#include "effect_lane.hpp"

#include "log.hpp"

namespace host_stub {

EffectLane::EffectLane(std::string name, size_t capacity, Handler handler, uint32_t event_kinds)
    : name_(std::move(name)),
      handler_(std::move(handler)),
      event_kinds_(event_kinds),
      ring_(capacity == 0 ? 1 : capacity),
      worker_([this] { run(); }) {}

EffectLane::~EffectLane() { close_and_join(); }

void EffectLane::push(const HostEventPtr& event) noexcept {
  if ((event->kind & event_kinds()) == 0) return;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    if (size_ == ring_.size()) {
      ++stats_.dropped;
      return;
    }
    ring_[(head_ + size_) % ring_.size()] = event;  // copying a shared_ptr cannot throw
    ++size_;
    ++accepted_total_;
    wake = worker_waiting_;
  }
  if (wake) work_cv_.notify_one();
}

void EffectLane::wait_processed() {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = accepted_total_;
  ++barrier_waiters_;
  processed_cv_.wait(lock, [&] { return processed_total_ >= ticket; });
  --barrier_waiters_;
}

bool EffectLane::wait_processed_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = accepted_total_;
  ++barrier_waiters_;
  const bool done = processed_cv_.wait_for(lock, timeout, [&] { return processed_total_ >= ticket; });
  --barrier_waiters_;
  return done;
}

void EffectLane::close_and_join() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  work_cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

LaneStats EffectLane::stats() const {
  std::lock_guard lock(mutex_);
  LaneStats s = stats_;
  s.queued = size_;
  return s;
}

void EffectLane::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (size_ == 0) {
      if (closing_) return;
      worker_waiting_ = true;
      work_cv_.wait(lock, [&] { return size_ > 0 || closing_; });
      worker_waiting_ = false;
      continue;
    }
    HostEventPtr event = std::move(ring_[head_]);
    head_ = (head_ + 1) % ring_.size();
    --size_;
    lock.unlock();

    std::string error;
    bool ok = true;
    const auto started = std::chrono::steady_clock::now();
    try {
      handler_(*event);
    } catch (const std::exception& e) {
      ok = false;
      error = e.what();
    } catch (...) {
      ok = false;
      error = "unknown exception";
    }
    const auto handler_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    event.reset();  // release outside the lock

    lock.lock();
    if (ok) {
      ++stats_.delivered;
    } else {
      // Logged once per lane (a failing effect fails on every event); the
      // count and the last error are in stats.
      if (stats_.failed == 0) log_line("[host] effect '" + name_ + "' failed on an event: " + error);
      ++stats_.failed;
      stats_.last_error = std::move(error);
    }
    if (static_cast<uint64_t>(handler_us) > stats_.max_handler_us) stats_.max_handler_us = handler_us;
    ++processed_total_;
    if (barrier_waiters_ > 0) processed_cv_.notify_all();
  }
}

}  // namespace host_stub
