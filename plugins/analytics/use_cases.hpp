// The spec's three use cases (spec: "Use cases"), plus the small pieces they
// share. The plugin (plugin.cpp) wires them to the host's bus, the writer
// thread and the flusher.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "event_mapper.hpp"
#include "hand_off_buffer.hpp"
#include "queue_store.hpp"
#include "stats.hpp"

namespace wep::analytics {

// EnqueueAnalyticsEventUseCase: add an event to the local queue; a no-op when
// analytics is disabled. Runs on the host's lane thread: it maps the event
// (with its own EventMapper, when given one, while analytics is enabled)
// and hands the result to the writer thread, which stores it, and returns
// in microseconds. Mapping here keeps the writer's thread for SQLite alone.
// Thread-safe for one calling thread at a time (the host's lane).
//
// Two modes. Without an event log (the default) this use case decides:
// disabled events are dropped here, a full buffer drops the event. Backed
// by the host's event log (set_log_backed), every mutation goes to the writer,
// which decides from the log's order (writer.hpp), and an event the full
// buffer refuses is not lost: the writer reads it from the log.
class EnqueueAnalyticsEventUseCase {
 public:
  enum class Outcome { accepted, disabled, buffer_full, deferred_to_log };

  // `buffer` and `stats` must outlive the use case. Starts enabled.
  // `mapper` (may be null: the writer maps) is used only by execute().
  EnqueueAnalyticsEventUseCase(HandOffBuffer& buffer, Stats& stats, EventMapper* mapper = nullptr)
      : buffer_(buffer), stats_(stats), mapper_(mapper) {}

  // Counts the outcome in stats (accepted / dropped_disabled /
  // dropped_buffer_full / catch_up_deferred). Never blocks, never throws.
  Outcome execute(std::string_view mutation_type, std::string_view payload_json, int64_t committed_at_ms,
                  int64_t sequence = 0) noexcept;

  // Set before the first execute() (not thread-safe against it).
  void set_log_backed(bool log_backed) { log_backed_ = log_backed; }

  // The analytics_enabled setting; takes effect for the next execute().
  void set_enabled(bool enabled) { enabled_.store(enabled, std::memory_order_release); }
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }

 private:
  HandOffBuffer& buffer_;
  Stats& stats_;
  EventMapper* const mapper_;
  std::atomic<bool> enabled_{true};
  bool log_backed_ = false;
};

// How far the writer thread got, as HandOffBuffer tickets: once advance(t)
// was called, every event with a ticket <= t has been stored (or dropped and
// counted). The first advance() also means the writer has finished its
// catch-up from the host's event log. Thread-safe.
class WriterProgress {
 public:
  void advance(uint64_t ticket);
  // The writer has ended: waiters return instead of waiting forever.
  void close();
  // Blocks until advance() reached `ticket` (true) or close() (false).
  bool wait_for(uint64_t ticket);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool advanced_ = false;
  uint64_t stored_ = 0;
  bool closed_ = false;
};

// A QueueStore connection shared by threads other than the writer (pending
// counts, stats), serialised by a mutex and opened lazily, so a database that
// cannot be opened now is retried at the next call. Thread-safe.
class SharedQueueStore {
 public:
  SharedQueueStore(std::string path, StoreOptions options) : path_(std::move(path)), options_(options) {}

  // Runs f(QueueStore&) under the mutex, opening the store first if needed.
  // Throws StoreError (and drops the connection, to reopen next time).
  // While held (hold() .. release()) it waits for release() first, at most
  // kHoldWait, then throws StoreError.
  template <class F>
  auto with(F&& f) {
    std::unique_lock lock(mutex_);
    if (!released_.wait_for(lock, kHoldWait, [this] { return !held_; })) {
      throw StoreError(SQLITE_BUSY, "analytics queue: the queue file is being replaced");
    }
    try {
      if (!store_) store_ = std::make_unique<QueueStore>(path_, options_);
      return f(*store_);
    } catch (const StoreError&) {
      store_.reset();
      throw;
    }
  }
  // Closes the connection (e.g. before the file is moved aside).
  void close() {
    std::lock_guard lock(mutex_);
    store_.reset();
  }
  // Closes the connection and keeps it closed until release(): the writer is
  // moving, deleting or recreating the file and its -wal / -shm, and a
  // connection opened meanwhile would create them again under its feet.
  void hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
    store_.reset();
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      held_ = false;
    }
    released_.notify_all();
  }

 private:
  const std::string path_;
  const StoreOptions options_;
  static constexpr std::chrono::seconds kHoldWait{30};
  std::mutex mutex_;
  std::condition_variable released_;
  bool held_ = false;
  std::unique_ptr<QueueStore> store_;
};

// PendingAnalyticsCountUseCase: the number of undelivered events in the local
// queue, counted only after every event accepted before the call is stored
// (a barrier behind the writer thread). O(1) count. Thread-safe.
class PendingAnalyticsCountUseCase {
 public:
  PendingAnalyticsCountUseCase(const HandOffBuffer& buffer, WriterProgress& progress, SharedQueueStore& store)
      : buffer_(buffer), progress_(progress), store_(store) {}

  // Throws StoreError when the database cannot be read.
  int64_t execute();

 private:
  const HandOffBuffer& buffer_;
  WriterProgress& progress_;
  SharedQueueStore& store_;
};

// FlushAnalyticsQueueUseCase, the queue half: hands out batches oldest first
// and applies the outcome of sending them. The sending half (transport,
// verdicts, backoff) is the Flusher's. Used by one thread at a time, with the
// caller's own QueueStore connection. Throws StoreError.
class FlushAnalyticsQueueUseCase {
 public:
  // `store` and `stats` must outlive the use case. Batches hold at most
  // `batch_size` rows and, past the first row, `batch_max_bytes` bytes.
  FlushAnalyticsQueueUseCase(QueueStore& store, Stats& stats, size_t batch_size, size_t batch_max_bytes)
      : store_(store), stats_(stats), batch_size_(batch_size), batch_max_bytes_(batch_max_bytes) {}

  // The oldest rows, each with its stable event_id. Empty: nothing queued.
  std::vector<QueuedRow> next_batch() {
    std::vector<QueuedRow> rows;
    store_.read_after(0, batch_size_, batch_max_bytes_, rows);
    return rows;
  }

  // The transport stored these rows: delete them, count them as delivered.
  void mark_delivered(std::span<const IdRange> ranges);
  void mark_delivered(std::span<const int64_t> ids) { mark_delivered(id_ranges(ids)); }

  // Refused for good: move to analytics_dead_letter with the reason, count.
  void dead_letter(std::span<const int64_t> ids, std::string_view reason);

  // Rows still queued.
  int64_t pending() { return store_.count(); }

 private:
  QueueStore& store_;
  Stats& stats_;
  const size_t batch_size_;
  const size_t batch_max_bytes_;
};

}  // namespace wep::analytics
