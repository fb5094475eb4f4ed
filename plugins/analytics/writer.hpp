// The writer: the thread that turns handed-off events into queued rows.
//
// It takes batches from the HandOffBuffer, maps mutations to rows
// (EventMapper) and inserts them in transactions of up to
// kMaxRowsPerTransaction rows (group commit); it runs the age-out every
// maintenance_interval_ms and recovers from a damaged database by moving it
// aside and creating a fresh one (the other connections are closed around
// the move through Hooks; the transport is not touched). The rows still
// readable in a damaged file (see queue_salvage.hpp) are moved into the fresh
// one first, keeping their ids, with the file's checkpoint.
//
// At every maintenance tick (and when a write reports the file moved) the
// writer compares the file at database_path with the one it has open (device
// and inode). When the file was deleted, a fresh queue is created there: the
// rows the deleted file held are not carried over (deleting the file is
// taken as the wish to drop them). When another file took its place, the
// writer goes on in that file as it is (a valid queue is used with its rows;
// a damaged one is salvaged and set aside as above); its own position in the
// host's log stays its own and is written to the file with the next rows.
// Both are counted in queue_file_replaced and reported through report_error.
//
// With the host's event log (API 1.1) the queue is a projection of the log:
//   - The checkpoint (the last mutation processed, stored or not, and
//     analytics_enabled as of it) is written in the same transaction as the
//     rows (QueueStore::insert_capped), so a crash loses or repeats nothing.
//   - At start, the writer reads the log after the checkpoint up to the
//     newest mutation committed when start() was called, before any live
//     event (catch-up); live events wait in the bounded
//     buffer (or, when it is full, are left to the log), and a live mutation
//     at or below the checkpoint is ignored. The start-up catch-up reads the
//     log once, streamed, on a reader thread of its own that hands the
//     mutations over in chunks (catch_up_pipe.hpp) while the writer stores
//     the previous chunk, so the log read and the SQLite work overlap; the
//     reader maps a chunk while the writer is behind and leaves it to the
//     writer otherwise, so that both threads map. During a large
//     catch-up a third thread copies the WAL into the file (wal_copier.hpp)
//     and the writer's own automatic checkpoints are off. Whenever a
//     live mutation does not follow the checkpoint (the buffer or the
//     host's lane dropped some), or analytics_enabled changed just before
//     it, the writer first reads the log from the checkpoint up to it
//     instead of guessing.
//   - analytics_enabled is taken from the log's setting changes, in log
//     order: a mutation committed while it was false is never recorded.
//     Privacy wins at the start-up catch-up (what was committed while the
//     plugin was not running): a mutation it reads is recorded only if
//     analytics was enabled when it was committed, no change to false was
//     logged after it (up to where the catch-up ends), and analytics was
//     enabled when start() was called (a later change is live: it applies
//     from its place among the live mutations on). Since a change to false
//     may come after the rows it concerns, the rows the catch-up stores are
//     held: the checkpoint written with its first rows starts a hold
//     (analytics_checkpoint.hold_from_id) and the flusher never reads a held
//     row (QueueStore::read_after). A change to false read later deletes
//     every held row, in the transaction that stores the checkpoint past it;
//     the checkpoint written when the catch-up reaches its end releases the
//     hold. A catch-up cut short (stop, crash, a failed read) leaves the hold
//     in the file: the next one goes on holding (and deletes the held rows
//     if analytics is off by then). Live, a mutation is recorded as soon as
//     it is processed, which is before any later change.
//   - First start (no checkpoint): the writer starts at the end of the log;
//     what happened before the plugin was installed is not recorded.
// Without a log, events are recorded as they arrive (the lane has already
// dropped the disabled ones), and a crash loses what was not yet stored.
//
// Thread safety: open() and start() from one thread before the writer runs;
// request_stop() and join() from any one thread; stats are atomics.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <wep/plugin.hpp>

#include "catch_up_pipe.hpp"
#include "config.hpp"
#include "enabled_setting.hpp"
#include "event_mapper.hpp"
#include "hand_off_buffer.hpp"
#include "queue_store.hpp"
#include "stats.hpp"
#include "use_cases.hpp"
#include "wal_copier.hpp"

namespace wep::analytics {

// Rows per insert transaction (group commit). Past about a thousand rows a
// bigger transaction saves nothing and only grows the WAL and spills the
// page cache.
constexpr size_t kMaxRowsPerTransaction = 4096;

class Writer {
 public:
  struct Hooks {
    std::function<void()> rows_stored;         // after each committed insert of rows
    std::function<void()> close_connections;   // before the file is moved aside or recreated; closed until reopen
    std::function<void()> reopen_connections;  // after the fresh file exists
    std::function<void(const std::string&)> report_error;  // a store problem, for log and stats
  };

  // Everything passed must outlive the writer.
  Writer(const AnalyticsConfig& config, const StoreOptions& store_options, wep::Host host, Stats& stats,
         HandOffBuffer& buffer, WriterProgress& progress, EventMapper& mapper, Hooks hooks);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Opens the queue (a damaged file is moved aside), repairs the pending
  // counter and runs a full age-out. Failures are reported, not thrown.
  void open();

  // Starts the thread. `log_backed`: the host keeps an event log; the
  // checkpoint is read (on a first start: set to the end of the log) before
  // this returns, and the thread catches up from it before taking live
  // events.
  void start(bool log_backed);

  // Asks the thread to end: it stores what the buffer accepted (a catch-up
  // under way stops at the next row, its rows still held; the rest is read
  // at the next start).
  void request_stop();
  // Waits for the thread to end, then closes the queue connection.
  void join();

  // analytics_enabled as start() read it for the start-up catch-up (unset:
  // no event log, or unreadable). Does not change once start() returned.
  std::optional<bool> enabled_at_start() const { return enabled_at_start_; }

 private:
  struct AgeOutPass {
    bool active = false;
    int64_t after_id = 0;
    std::string cutoff_created_at;
  };

  void run() noexcept;
  void initial_checkpoint();
  void process_batch(const HandOffBatch& batch);
  // Processes the log after the checkpoint, in order, up to (not including)
  // mutation `before_sequence`, live rules (on this thread).
  void read_log(int64_t before_sequence);
  // The start-up catch-up (privacy first, rows held; see the top of this
  // file) up to the newest mutation when start() was called. True when it
  // got there (false: stopped, or the read failed and was reported).
  bool catch_up_at_start();
  // The catch-up's reader thread: reads the log after `position`, maps
  // (or leaves unmapped) and hands chunks over; an error goes to `*error`.
  // Uses mapper_ (the writer thread does not use it meanwhile).
  void read_for_catch_up(CatchUpPipe& pipe, Checkpoint position, int64_t before_sequence, bool enabled_now,
                         std::string* error) noexcept;
  // Maps a chunk the reader left unmapped (with catch_up_mapper_).
  void map_unmapped(CatchUpChunk& chunk);
  void add_mutation(std::string_view type, std::string_view payload, int64_t committed_at_ms, bool record);
  void add_event(const HandOffBatch& batch, const HandOffBatch::Event& event, bool record);
  void flush_rows();
  void insert_rows(std::span<const NewRow> rows, const std::optional<Checkpoint>& checkpoint,
                   bool discard_held = false);
  bool open_store();
  // Turns store_'s automatic checkpoints on or off; false if there is no
  // store or SQLite refused.
  bool set_automatic_checkpoints(bool on);
  // Stops wal_copier_, if any, and turns store_'s automatic checkpoints
  // back on.
  void end_wal_copier();
  // Notes the device and inode of the file store_ has open.
  void remember_store_file();
  // True when the file at database_path is not the one store_ has open.
  bool queue_file_changed() const;
  // Closes every connection and opens database_path again (see the top).
  bool reopen_changed_file();
  bool recover_from_corruption(const std::string& reason);
  void begin_age_out(AgeOutPass& pass);
  void age_out_step(AgeOutPass& pass);
  bool read_enabled_setting();

  const AnalyticsConfig& config_;
  const StoreOptions store_options_;
  const wep::Host host_;
  Stats& stats_;
  HandOffBuffer& buffer_;
  WriterProgress& progress_;
  EventMapper& mapper_;
  EventMapper catch_up_mapper_;  // this thread's while the catch-up reader uses mapper_
  const Hooks hooks_;

  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // The writer thread's own (open() uses them before the thread exists).
  std::unique_ptr<QueueStore> store_;
  bool store_failing_ = false;
  dev_t store_device_ = 0;  // the file store_ has open
  ino_t store_inode_ = 0;
  bool log_backed_ = false;
  Checkpoint checkpoint_;                  // log-backed: where the rows end
  std::optional<Checkpoint> committed_;    // the checkpoint last written
  std::vector<NewRow> rows_;               // reused: rows keep their strings' capacity
  std::unique_ptr<WalCopier> wal_copier_;  // during a large start-up catch-up
  size_t used_rows_ = 0;
  int64_t log_end_at_start_ = 0;          // the newest mutation when start() was called
  std::optional<bool> enabled_at_start_;  // analytics_enabled when start() was called (unset: unreadable)
  bool catch_up_done_ = true;             // false until the start-up catch-up reached its end
  bool setting_pending_ = false;          // a live analytics_enabled change not yet placed from the log
  bool pending_enabled_ = false;          // its value
};

}  // namespace wep::analytics
