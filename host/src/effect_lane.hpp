// EffectLane: one effect's bounded queue plus the one worker thread that
// calls the effect. The bus slot only pushes (never blocks on the effect);
// the worker delivers in push order, catching and counting failures.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <wep/host/event.hpp>
#include <wep/host/write_effect_coordinator.hpp>

namespace wep {

// Thread safety: every member may be called from any thread, except that
// close_and_join must not be called from the lane's own handler. After
// close_and_join, push drops silently.
class EffectLane {
 public:
  using Handler = std::function<void(const Event&)>;
  // Called once per lane, on the worker thread, the first time the handler
  // throws (later failures are only counted).
  using FailureLog = std::function<void(const std::string& lane, const std::string& error)>;

  // Starts the worker. `capacity` >= 1 events; `event_kinds` filters push().
  EffectLane(std::string name, size_t capacity, Handler handler, uint32_t event_kinds, FailureLog failure_log);
  EffectLane(const EffectLane&) = delete;
  EffectLane& operator=(const EffectLane&) = delete;
  // Closes and joins if that has not happened yet.
  ~EffectLane();

  const std::string& name() const { return name_; }

  void set_event_kinds(uint32_t event_kinds);

  // Never blocks on the effect and never throws: queues the event, or drops
  // and counts it when the lane is full. Ignores kinds not subscribed to.
  void push(const EventPtr& event) noexcept;

  // Lane barrier: returns once every event accepted before the call has been
  // handled (delivered or failed). The timed form returns false at the timeout.
  void wait_processed();
  bool wait_processed_for(std::chrono::milliseconds timeout);

  // Holds delivery (returns once no handler call is running); push keeps
  // queueing. resume() lets the worker go on.
  void pause();
  void resume();

  // Handles what is still queued (even when paused), then ends and joins
  // the worker. Idempotent.
  void close_and_join();

  EffectStats stats() const;

 private:
  void run();

  const std::string name_;
  const Handler handler_;
  const FailureLog failure_log_;
  const size_t capacity_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // the worker waits for events, resume or close
  std::condition_variable state_cv_;  // barriers and pause wait for progress
  std::deque<EventPtr> queue_;        // at most capacity_ events
  uint32_t event_kinds_;
  uint64_t accepted_total_ = 0;
  uint64_t processed_total_ = 0;
  bool closing_ = false;
  bool paused_ = false;
  bool in_handler_ = false;
  EffectStats stats_;

  std::thread worker_;  // last: started after everything above exists
};

}  // namespace wep
