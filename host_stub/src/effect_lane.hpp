// EffectLane: one effect's bounded queue plus the one worker thread that
// calls the effect. The bus slot only pushes (never blocks on the effect);
// the worker delivers in push order, catching and counting failures.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "host_event.hpp"

namespace host_stub {

struct LaneStats {
  uint64_t delivered = 0;  // handler returned normally
  uint64_t failed = 0;     // handler threw
  uint64_t dropped = 0;    // lane full at push time
  uint64_t queued = 0;     // accepted, not yet handled
  uint64_t max_handler_us = 0;
  std::string last_error;  // of the last failed call, empty if none
};

// Thread safety: push, wait_processed*, set_event_kinds and stats may be
// called from any thread; close_and_join from one thread, once, after the
// lane was disconnected from the bus (later pushes are then dropped silently).
class EffectLane {
 public:
  // Called on the worker thread for each event; may throw (counted as failed).
  using Handler = std::function<void(const HostEvent&)>;

  // Starts the worker. capacity >= 1 events. `event_kinds` filters push().
  EffectLane(std::string name, size_t capacity, Handler handler, uint32_t event_kinds);
  EffectLane(const EffectLane&) = delete;
  EffectLane& operator=(const EffectLane&) = delete;
  // Closes and joins if that has not happened yet.
  ~EffectLane();

  const std::string& name() const { return name_; }

  // Filter: only events whose kind is in `event_kinds` are accepted by push.
  void set_event_kinds(uint32_t event_kinds) { event_kinds_.store(event_kinds, std::memory_order_relaxed); }
  uint32_t event_kinds() const { return event_kinds_.load(std::memory_order_relaxed); }

  // Never blocks on the effect and never throws: queues the event, or drops
  // and counts it when the lane is full. Ignores events not subscribed to.
  void push(const HostEventPtr& event) noexcept;

  // Lane barrier: returns once every event accepted before the call has been
  // handled (delivered or failed). The timed form returns false at the timeout.
  void wait_processed();
  bool wait_processed_for(std::chrono::milliseconds timeout);

  // Handles what is still queued, then ends and joins the worker. Idempotent.
  void close_and_join();

  LaneStats stats() const;

 private:
  void run();

  const std::string name_;
  const Handler handler_;
  std::atomic<uint32_t> event_kinds_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;       // worker waits for events or close
  std::condition_variable processed_cv_;  // barriers wait for progress
  std::vector<HostEventPtr> ring_;        // fixed capacity ring buffer
  size_t head_ = 0;                       // next to pop
  size_t size_ = 0;
  uint64_t accepted_total_ = 0;
  uint64_t processed_total_ = 0;
  bool closing_ = false;
  bool worker_waiting_ = false;
  size_t barrier_waiters_ = 0;
  LaneStats stats_;

  std::thread worker_;  // last: started after everything above exists
};

}  // namespace host_stub
