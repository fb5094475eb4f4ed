// Copies the queue's write-ahead log into its database file on a thread and
// connection of its own while the writer stores a large backlog (the
// start-up catch-up), so that the writer's thread only inserts.
//
// SQLite's automatic checkpoint runs on the committing connection: once the
// WAL passes 1,000 pages, the commit that crossed it also copies those pages
// into the database file and syncs both, about as much work as the inserts
// themselves. While a WalCopier runs, the writer turns its own automatic
// checkpoints off (QueueStore::set_automatic_checkpoints) and calls
// committed() after each commit; the copier runs a passive checkpoint
// (PRAGMA wal_checkpoint(PASSIVE), which never blocks the writer) whenever
// there are commits it has not copied. A passive copy made while the writer
// goes on rarely leaves the WAL fully copied at the moment the writer starts
// its next transaction, which is when SQLite starts the WAL over, so the
// writer bounds the WAL itself: every few chunks it waits (wait_until_copied)
// for a copy that covers all of its commits, and its next transaction then
// starts the WAL from the beginning.
//
// Nothing here is needed for correctness: a copy that fails or is not made
// leaves the pages in the WAL, where every reader finds them and the next
// checkpoint copies them. A crash loses nothing either (the WAL is replayed
// at the next open).
//
// Thread safety: committed(), wait_until_copied() and stop() from the
// writer's thread; the copier's connection is used only on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "queue_store.hpp"

namespace wep::analytics {

class WalCopier {
 public:
  // Starts the thread, which opens its own connection to the existing file
  // at `path` (it never creates one).
  WalCopier(std::string path, StoreOptions options);
  ~WalCopier();  // stop()
  WalCopier(const WalCopier&) = delete;
  WalCopier& operator=(const WalCopier&) = delete;

  // A write transaction was committed: there is something to copy.
  void committed();

  // Waits until a copy that started after every committed() so far has
  // finished, at most `timeout`. False on timeout, or when the copier has
  // stopped (its connection could not be opened, or stop() was called).
  bool wait_until_copied(std::chrono::milliseconds timeout);

  // Ends the thread after the copy under way, if any, and closes the
  // connection (e.g. before the writer moves the file aside). Idempotent.
  void stop();

 private:
  void run(const std::string& path, const StoreOptions& options) noexcept;

  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t commits_ = 0;         // committed() calls so far
  uint64_t copied_through_ = 0;  // commits_ as of the start of the last finished copy
  bool stopping_ = false;
  bool stopped_ = false;  // the thread has ended (or never got its connection)
  std::thread thread_;
};

}  // namespace wep::analytics
