// The hand-over between the start-up catch-up's reader thread (which reads
// the host's event log) and the writer thread (which stores the rows):
// chunks passed by move (their storage comes back for reuse), so the log
// read and the SQLite work overlap while memory stays bounded by
// max_chunks + 2 chunks.
//
// Mapping (the JSON work and the PII screen) is shared: the reader maps a
// chunk's mutations itself while the writer is behind (chunks wait in the
// pipe), and otherwise leaves them unmapped (copied), so that the writer,
// which would soon wait, maps them before storing. Both threads work until
// the end.
//
// Thread safety: one thread calls put() and finish(), another take(); any
// thread may call close() and waiting().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "queue_store.hpp"

namespace wep::analytics {

// What the reader hands over: rows (or mutations still to map) in log order
// and where the log stands after them.
struct CatchUpChunk {
  // A mutation left for the writer to map: its type and payload are in
  // unmapped_text.
  struct Unmapped {
    size_t type_offset = 0;
    size_t type_size = 0;
    size_t payload_offset = 0;
    size_t payload_size = 0;
    int64_t committed_at_ms = 0;
  };

  // Unmapped text past which the reader hands a chunk over early: with large
  // payloads a chunk holds fewer mutations, so its memory stays bounded.
  static constexpr size_t kMaxUnmappedTextBytes = 1 << 20;

  bool mapped = true;              // rows holds the chunk; otherwise unmapped does
  std::vector<NewRow> rows;        // the first `used` are meaningful; the rest keep their strings' capacity
  std::vector<Unmapped> unmapped;  // the first `used` are meaningful
  std::string unmapped_text;       // the unmapped mutations' types and payloads, back to back
  size_t used = 0;
  Checkpoint checkpoint;      // the last mutation read and analytics_enabled as of it
  bool discard_held = false;  // a change to false was read: every held row goes, before these rows
  bool reached_end = false;   // the catch-up read everything it had to (this is the last chunk)

  // Appends a mutation for the writer to map (the chunk must be unmapped).
  void add_unmapped(std::string_view type, std::string_view payload, int64_t committed_at_ms) {
    if (unmapped.size() <= used) unmapped.emplace_back();
    Unmapped& entry = unmapped[used++];
    entry.type_offset = unmapped_text.size();
    entry.type_size = type.size();
    entry.payload_offset = entry.type_offset + type.size();
    entry.payload_size = payload.size();
    entry.committed_at_ms = committed_at_ms;
    unmapped_text.append(type).append(payload);
  }
  std::string_view type_of(const Unmapped& entry) const {
    return std::string_view(unmapped_text).substr(entry.type_offset, entry.type_size);
  }
  std::string_view payload_of(const Unmapped& entry) const {
    return std::string_view(unmapped_text).substr(entry.payload_offset, entry.payload_size);
  }

  // Forgets the rows or mutations (not the checkpoint), keeping capacity.
  void drop_contents() {
    used = 0;
    unmapped_text.clear();
  }
  // Empties the chunk for the next fill, keeping its capacity.
  void reset() {
    drop_contents();
    mapped = true;
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

  // Chunks waiting to be taken (not counting the one the writer works on).
  size_t waiting() {
    std::lock_guard lock(mutex_);
    return full_.size();
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
