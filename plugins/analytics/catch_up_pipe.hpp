// The hand-over between the start-up catch-up's reader thread (which reads
// the host's event log and maps each mutation) and the writer thread (which
// stores the rows): one chunk in flight at a time, passed by swap, so the
// log read and the SQLite work overlap while memory stays at three chunks.
//
// Thread safety: one thread calls put() and finish(), another take(); any
// thread may call close().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "queue_store.hpp"

namespace analytics {

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
  // Reader: hands `chunk` over, waiting while the previous one has not been
  // taken; `chunk` comes back reset (holding an older chunk's storage).
  // False if the pipe was closed (the writer takes nothing more).
  bool put(CatchUpChunk& chunk) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !full_ || closed_; });
    if (closed_) return false;
    std::swap(slot_, chunk);
    full_ = true;
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

  // Writer: waits for a chunk and swaps it into `out` (whose storage goes
  // back to the reader). False when the reader has finished and nothing is
  // left.
  bool take(CatchUpChunk& out) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return full_ || finished_; });
    if (!full_) return false;
    std::swap(slot_, out);
    full_ = false;
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
  std::mutex mutex_;
  std::condition_variable changed_;
  CatchUpChunk slot_;
  bool full_ = false;
  bool finished_ = false;
  bool closed_ = false;
};

}  // namespace analytics
