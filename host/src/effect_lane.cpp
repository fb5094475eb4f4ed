#include "effect_lane.hpp"

namespace wep {

EffectLane::EffectLane(std::string name, size_t capacity, Handler handler, uint32_t event_kinds, FailureLog failure_log)
    : name_(std::move(name)),
      handler_(std::move(handler)),
      failure_log_(std::move(failure_log)),
      capacity_(capacity == 0 ? 1 : capacity),
      event_kinds_(event_kinds),
      worker_([this] { run(); }) {
  stats_.name = name_;
}

EffectLane::~EffectLane() { close_and_join(); }

void EffectLane::set_event_kinds(uint32_t event_kinds) {
  std::lock_guard lock(mutex_);
  event_kinds_ = event_kinds;
}

void EffectLane::push(const EventPtr& event) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (closing_ || (event->kind & event_kinds_) == 0) return;
    if (queue_.size() >= capacity_) {
      ++stats_.dropped;
      return;
    }
    try {
      queue_.push_back(event);
    } catch (...) {  // out of memory: dropped like a full lane
      ++stats_.dropped;
      return;
    }
    ++accepted_total_;
  }
  work_cv_.notify_one();
}

void EffectLane::wait_processed() {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = accepted_total_;
  state_cv_.wait(lock, [&] { return processed_total_ >= ticket; });
}

bool EffectLane::wait_processed_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = accepted_total_;
  return state_cv_.wait_for(lock, timeout, [&] { return processed_total_ >= ticket; });
}

void EffectLane::pause() {
  std::unique_lock lock(mutex_);
  paused_ = true;
  state_cv_.wait(lock, [&] { return !in_handler_; });
}

void EffectLane::resume() {
  {
    std::lock_guard lock(mutex_);
    paused_ = false;
  }
  work_cv_.notify_one();
}

void EffectLane::close_and_join() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
    paused_ = false;
  }
  work_cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

EffectStats EffectLane::stats() const {
  std::lock_guard lock(mutex_);
  EffectStats s = stats_;
  s.queued = queue_.size();
  return s;
}

void EffectLane::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() || paused_) {
      if (queue_.empty() && closing_) return;
      work_cv_.wait(lock, [&] { return (!queue_.empty() && !paused_) || closing_; });
      continue;
    }
    EventPtr event = std::move(queue_.front());
    queue_.pop_front();
    in_handler_ = true;
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
    const auto handler_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count());
    event.reset();  // release outside the lock
    if (!ok && stats_.failed == 0 && failure_log_) {
      try {
        failure_log_(name_, error);  // once per lane: a failing effect fails on every event
      } catch (...) {
      }
    }

    lock.lock();
    in_handler_ = false;
    if (ok) {
      ++stats_.delivered;
    } else {
      ++stats_.failed;
      stats_.last_error = std::move(error);
    }
    if (handler_us > stats_.max_handler_us) stats_.max_handler_us = handler_us;
    ++processed_total_;
    state_cv_.notify_all();
  }
}

}  // namespace wep
