// Counters shared by the plugin's threads. All members are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace wep::analytics {

struct Stats {
  std::atomic<int64_t> accepted{0};                 // events handed to the writer
  std::atomic<int64_t> stored{0};                   // rows inserted
  std::atomic<int64_t> dropped_disabled{0};         // analytics_enabled was false
  std::atomic<int64_t> dropped_unmapped{0};         // no mapping for the type
  std::atomic<int64_t> dropped_buffer_full{0};      // hand-off buffer full
  std::atomic<int64_t> dropped_invalid{0};          // payload not a JSON object
  std::atomic<int64_t> dropped_store_error{0};      // insert failed (disk full...)
  std::atomic<int64_t> dropped_queue_cap{0};        // oldest rows dropped past max_queue_rows
  std::atomic<int64_t> properties_dropped_pii{0};   // values that looked like PII (sum of pii_*)
  std::atomic<int64_t> properties_dropped_type{0};  // objects, arrays, null
  std::atomic<int64_t> properties_dropped_long{0};  // strings longer than the short-string limit
  std::atomic<int64_t> pii_email{0};                // e-mail addresses
  std::atomic<int64_t> pii_phone{0};                // phone-number-like digit groups
  std::atomic<int64_t> pii_ip{0};                   // IPv4 / IPv6 / MAC addresses
  std::atomic<int64_t> pii_url{0};                  // URLs
  std::atomic<int64_t> pii_long_number{0};          // long digit runs (ids, card numbers), card-like integers
  std::atomic<int64_t> pii_secret{0};               // credentials, JWTs, API keys, high-entropy tokens
  std::atomic<int64_t> corrupt_recoveries{0};       // damaged files moved aside
  std::atomic<int64_t> salvaged_rows{0};            // rows of damaged files moved into the fresh queue
  std::atomic<int64_t> queue_file_replaced{0};      // the queue file deleted or replaced under the plugin
  std::atomic<int64_t> aged_out{0};                 // rows past retention_days
  std::atomic<int64_t> delivered{0};                // rows the transport stored
  std::atomic<int64_t> dead_lettered{0};            // rows refused for good
  std::atomic<int64_t> requests{0};                 // transport send() calls
  std::atomic<int64_t> requests_in_flight{0};       // send() calls not yet returned (0 or 1)
  std::atomic<int64_t> retries{0};                  // RETRY_LATER / FAILED verdicts
  std::atomic<int64_t> splits{0};                   // batches split (413 / rejects)
  std::atomic<int64_t> systemic_failures{0};        // passes where no row of the batch was accepted
  std::atomic<int64_t> requeued{0};                 // dead-lettered rows put back in the queue
  std::atomic<int64_t> catch_up_replayed{0};        // mutations read from the host's event log
  std::atomic<int64_t> catch_up_ignored_live{0};    // live mutations at or below the checkpoint
  std::atomic<int64_t> catch_up_deferred{0};        // live mutations the full buffer left to the log
  std::atomic<int64_t> catch_up_runs{0};            // reads of the event log
  std::atomic<int64_t> catch_up_discarded{0};       // held rows deleted: a change to false followed them
  std::atomic<bool> catch_up_holding{false};        // a start-up catch-up holds its rows back from delivery
  std::atomic<int64_t> checkpoint{-1};              // last mutation sequence processed (-1: no log)
  std::atomic<bool> catch_up_on{false};             // the host keeps an event log

  // What the flusher thread is doing, as it last saw its control state
  // (written by the flusher under its mutex, read by stats).
  enum class FlusherState : int {
    kSettling,  // a connectivity or setting change the thread has not acted on yet
    kPaused,    // offline or disabled: sends nothing until online and enabled
    kIdle,      // online, the queue was empty: asleep until rows are stored
    kWaiting,   // flush_interval_ms or a backoff delay before the next pass
    kSending,   // a pass (read, send, settle) is running
    kStopped,   // the thread has ended (or never started)
  };
  std::atomic<FlusherState> flusher_state{FlusherState::kStopped};
  static const char* flusher_state_name(FlusherState state) {
    switch (state) {
      case FlusherState::kSettling:
        return "settling";
      case FlusherState::kPaused:
        return "paused";
      case FlusherState::kIdle:
        return "idle";
      case FlusherState::kWaiting:
        return "waiting";
      case FlusherState::kSending:
        return "sending";
      case FlusherState::kStopped:
        return "stopped";
    }
    return "?";
  }

  void set_last_error(std::string message) {
    std::lock_guard lock(mutex_);
    last_error_ = std::move(message);
  }
  std::string last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
  }

 private:
  mutable std::mutex mutex_;
  std::string last_error_;
};

}  // namespace wep::analytics
