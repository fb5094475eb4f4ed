// FlusherQueue: the flusher's side of the SQLite queue, on a thread of its
// own so that queue work overlaps the network: while the transport sends
// batch k, this thread deletes batch k-1 (delivered) and reads batch k+1.
//
// It owns its own QueueStore connection (opened on its thread) and applies
// the queue half of FlushAnalyticsQueueUseCase: deleting delivered rows and
// dead-lettering refused ones, counted in Stats.
//
// Reading: batches are handed out oldest first. Within one drain, the next
// batch is the rows after the last row handed out (the rows in flight are
// not read twice); restart() goes back to the oldest row, which the flusher
// does after anything but a fully settled batch, so rows that were not
// settled are read again. Row ids only grow (AUTOINCREMENT, one writer at a
// time), so reading "after id X" misses no row.
//
// Durability: a delivered batch is deleted asynchronously. If the process
// dies first the rows are sent again with the same event ids, and the server
// ignores them (exactly once at the server).
//
// Thread safety: every public method is for one caller thread (the flusher
// thread). Errors (StoreError) of queued work surface as an exception from
// the next call; the caller then destroys this object and makes a new one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "queue_store.hpp"
#include "stats.hpp"

namespace wep::analytics {

class FlusherQueue {
 public:
  // Starts the thread, which opens the store at `database_path`. Batches
  // hold at most `batch_size` rows and, past the first row, at most
  // `batch_max_bytes` bytes (queued_row_bytes).
  FlusherQueue(std::string database_path, StoreOptions options, Stats& stats, size_t batch_size,
               size_t batch_max_bytes);
  // Finishes the queued deletes and dead-letters, then ends the thread.
  ~FlusherQueue();
  FlusherQueue(const FlusherQueue&) = delete;
  FlusherQueue& operator=(const FlusherQueue&) = delete;

  // The next batch (see above), usually read ahead already; empty when
  // nothing is queued. Then reads ahead the batch after it. Throws StoreError.
  std::vector<QueuedRow> next_batch();

  // The transport stored these rows: they are deleted (and counted as
  // delivered) by the queue thread, in order with other queued work.
  void mark_delivered(std::vector<IdRange> ranges);

  // Refused for good: moved to analytics_dead_letter with the reason, and
  // counted. Returns when done. Throws StoreError.
  void dead_letter(std::vector<int64_t> ids, std::string reason);

  // Hands a batch from next_batch() back once it is settled, so that its
  // buffers are reused by a later read (on the queue thread, which
  // allocated them). Optional.
  void recycle(std::vector<QueuedRow>&& rows);

  // The next batch starts again at the oldest queued row.
  void restart();

  // Waits until every queued delete has been applied. Throws StoreError.
  void sync();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep::analytics
