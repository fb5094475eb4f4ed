// The hand-over between the start-up catch-up's reader thread (which reads
// the host's event log and maps each mutation) and the writer thread (which
// stores the rows): chunks of rows passed by move (their storage comes
// back for reuse), so the log read and the SQLite work overlap while memory
// stays bounded by max_chunks + 2 chunks.
//
// Thread safety: one thread calls put() and finish(), another take(); any
// thread may call close().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "queue_store.hpp"

namespace wep::analytics {

// What the reader hands over: rows in log order and where the log stands
// after them.
struct CatchUpChunk {
  std::vector<NewRow> rows;  // the first `used` are meaningful; the rest keep their strings' capacity
  size_t used = 0;
  Checkpoint checkpoint;      // the last mutation read and analytics_enabled as of it
  bool discard_held = false;  // a change to false was read: every held row goes, before these rows
  bool reached_end = false;   // the catch-up read everything it had to (this is the last chunk)

  // Empties the chunk for the next fill, keeping its rows' capacity.
  void reset() {
    used = 0;
    discard_held = false;
    reached_end = false;
  }
};

class CatchUpPipe {
 public:
  // At most `max_chunks` chunks wait to be taken (so the reader can run
  // ahead of a slow commit without memory growing past that).
  explicit CatchUpPipe(size_t max_chunks) : max_chunks_(max_chunks) {}

  // Reader: hands `chunk` over, waiting while max_chunks are waiting;
  // `chunk` comes back reset (holding a taken chunk's storage, if any).
  // False if the pipe was closed (the writer takes nothing more).
  bool put(CatchUpChunk& chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return full_.size() < max_chunks_ || closed_; });
    if (closed_) return false;
    full_.push_back(std::move(chunk));
    if (spare_.empty()) {
      chunk = CatchUpChunk();
    } else {
      chunk = std::move(spare_.back());
      spare_.pop_back();
    }
    lock.unlock();
    changed_.notify_all();
    chunk.reset();
    return true;
  }

  // Reader: no chunk follows.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
    }
    changed_.notify_all();
  }

  // Writer: waits for the oldest chunk and moves it into `out` (whose
  // storage goes back to the reader). False when the reader has finished
  // and nothing is left.
  bool take(CatchUpChunk& out) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !full_.empty() || finished_; });
    if (full_.empty()) return false;
    spare_.push_back(std::move(out));
    out = std::move(full_.front());
    full_.pop_front();
    lock.unlock();
    changed_.notify_all();
    return true;
  }

  // Writer: takes nothing more; a waiting put() returns false.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_all();
  }

 private:
  const size_t max_chunks_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<CatchUpChunk> full_;    // in log order
  std::vector<CatchUpChunk> spare_;  // taken chunks' storage, for the reader to reuse
  bool finished_ = false;
  bool closed_ = false;
};

}  // namespace wep::analytics
