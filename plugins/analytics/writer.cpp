#include "writer.hpp"

#include <pthread.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <utility>
#include <wep/sqlite/move_aside.hpp>

#include "queue_salvage.hpp"
#include "time_format.hpp"

namespace wep::analytics {
namespace {

// Rows one age-out step looks at: a few milliseconds of write lock.
constexpr int64_t kAgeOutScanRows = 20000;
// Extra attempts of a batch when another connection held the lock past the
// busy timeout.
constexpr int kBusyRetries = 3;
constexpr int64_t kMillisecondsPerDay = 86'400'000;
// First start: attempts at reading analytics_enabled and the end of the log
// with no change of the setting in between.
constexpr int kInitialReadAttempts = 5;

// Rows per chunk of the start-up catch-up, each stored in one transaction:
// a backlog is known to be large, so its transactions are larger than
// live ones (fewer commits, WAL frames and checkpoint writes per row).
constexpr size_t kCatchUpRowsPerTransaction = 8192;
// Chunks the catch-up's reader may have waiting for the writer: lets it run
// ahead of a slow commit. Memory: (this + 2) chunks.
constexpr size_t kCatchUpChunksInFlight = 3;
// The reader maps a chunk itself when at least this many wait for the
// writer (the writer is behind); otherwise the writer maps it.
constexpr size_t kMapWhenWaiting = 2;

// A start-up catch-up of more mutations than this copies the WAL on a
// thread of its own (WalCopier), and waits for it every
// kChunksPerWalRestart chunks, at most kWalCopyWait (the WAL then starts
// over: about kChunksPerWalRestart chunks' pages at most).
constexpr int64_t kWalCopierFromMutations = 4 * kCatchUpRowsPerTransaction;
constexpr uint64_t kChunksPerWalRestart = 16;
constexpr std::chrono::seconds kWalCopyWait{10};

// Rows per transaction when salvaged rows move into a fresh queue.
constexpr size_t kSalvageChunkRows = 4096;

constexpr int64_t kEndOfLog = std::numeric_limits<int64_t>::max();

}  // namespace

Writer::Writer(const AnalyticsConfig& config, const StoreOptions& store_options, wep::Host host, Stats& stats,
               HandOffBuffer& buffer, WriterProgress& progress, EventMapper& mapper, Hooks hooks)
    : config_(config),
      store_options_(store_options),
      host_(host),
      stats_(stats),
      buffer_(buffer),
      progress_(progress),
      mapper_(mapper),
      catch_up_mapper_(mapper),
      hooks_(std::move(hooks)) {}

Writer::~Writer() {
  request_stop();
  join();
}

void Writer::open() {
  std::error_code ignored;  // a missing folder shows up as an open error below
  std::filesystem::create_directories(std::filesystem::path(config_.database_path).parent_path(), ignored);
  if (!open_store()) return;
  try {
    store_->recount();
  } catch (const StoreError& e) {
    if (is_corruption(e)) {
      recover_from_corruption(e.what());
    } else {
      hooks_.report_error(e.what());
    }
  }
  AgeOutPass pass;
  begin_age_out(pass);
  while (pass.active) age_out_step(pass);
}

void Writer::start(bool log_backed) {
  log_backed_ = log_backed;
  catch_up_done_ = !log_backed_;
  if (log_backed_) {
    try {
      // The start-up catch-up's "analytics is enabled now" is the value at
      // this call: a later change arrives on the bus in order with the live
      // mutations and must not reach back to the ones before it.
      enabled_at_start_ = read_enabled_setting();
      log_end_at_start_ = host_.last_mutation_sequence().value_or(0);
      initial_checkpoint();  // here, so that a first start begins exactly where start() was called
    } catch (const std::exception& e) {
      hooks_.report_error(std::string("analytics catch-up: ") + e.what());
    }
  }
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "wep-analytics-w");  // for debuggers and profilers
}

void Writer::request_stop() {
  stopping_.store(true);
  buffer_.request_stop();
}

void Writer::join() {
  if (thread_.joinable()) thread_.join();
  progress_.close();
  store_.reset();
}

bool Writer::read_enabled_setting() {
  const std::optional<std::string> value = host_.setting_json(kEnabledKey);
  return value ? enabled_from_json(*value) : true;  // the spec's default
}

void Writer::initial_checkpoint() {
  std::optional<Checkpoint> stored;
  try {
    if (store_ || open_store()) stored = store_->checkpoint();
  } catch (const StoreError& e) {
    hooks_.report_error(e.what());
  }
  if (stored) {
    checkpoint_ = *stored;
    committed_ = stored;
    stats_.checkpoint.store(checkpoint_.last_sequence, std::memory_order_relaxed);
    host_.log(WEP_LOG_INFO,
              "catching up from the host's event log after mutation " + std::to_string(checkpoint_.last_sequence));
    return;
  }
  // First start on this queue: begin at the end of the log. The setting is
  // read on both sides of the end so that no change slips in between.
  for (int attempt = 0; attempt < kInitialReadAttempts; ++attempt) {
    const bool before = read_enabled_setting();
    checkpoint_.last_sequence = host_.last_mutation_sequence().value_or(0);
    checkpoint_.enabled = read_enabled_setting();
    if (before == checkpoint_.enabled) break;
    checkpoint_.enabled = false;  // still changing after the last attempt: privacy first
  }
  host_.log(WEP_LOG_INFO, "first start with the host's event log: recording from mutation " +
                              std::to_string(checkpoint_.last_sequence + 1) + " on (earlier ones are not recorded)");
  insert_rows({}, checkpoint_);
}

void Writer::run() noexcept {
  HandOffBatch batch;
  const auto interval = std::chrono::milliseconds(config_.maintenance_interval_ms);
  auto next_maintenance = std::chrono::steady_clock::now() + interval;
  AgeOutPass pass;
  if (log_backed_) {
    // What was committed while the plugin was not running, privacy first;
    // what follows is live (processed in order as it comes).
    catch_up_done_ = catch_up_at_start();
  }
  progress_.advance(0);  // pending counts may now go ahead
  for (;;) {
    bool stopped = false;
    // While an age-out pass is under way, do one step per loop without
    // waiting, so event batches and age-out steps interleave.
    const auto deadline = pass.active ? std::chrono::steady_clock::now() : next_maintenance;
    const uint64_t ticket = buffer_.take(batch, deadline, &stopped);
    try {
      process_batch(batch);
    } catch (const std::exception& e) {
      // Not a store error (those are handled inside): e.g. out of memory.
      used_rows_ = 0;
      stats_.dropped_store_error.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
      hooks_.report_error(std::string("analytics writer: ") + e.what());
    }
    progress_.advance(ticket);
    if (stopped && batch.empty()) break;  // everything accepted is stored
    try {
      if (!pass.active && std::chrono::steady_clock::now() >= next_maintenance) {
        if (store_ && queue_file_changed()) reopen_changed_file();
        begin_age_out(pass);
        next_maintenance = std::chrono::steady_clock::now() + interval;
        // Rows another connection stored (another process on the same
        // file) are sent at least every maintenance interval.
        hooks_.rows_stored();
        // A start-up catch-up whose read failed is tried again; mutations
        // the host's lane dropped show up here at the latest.
        if (log_backed_ && !catch_up_done_ && !stopping_.load()) {
          catch_up_done_ = catch_up_at_start();
        } else if (log_backed_ && !stopping_.load() &&
                   host_.last_mutation_sequence().value_or(0) > checkpoint_.last_sequence) {
          read_log(kEndOfLog);
        }
      }
      if (pass.active) age_out_step(pass);
    } catch (const std::exception& e) {
      pass.active = false;
      hooks_.report_error(std::string("analytics maintenance: ") + e.what());
    }
  }
  progress_.close();
}

void Writer::process_batch(const HandOffBatch& batch) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const HandOffBatch::Event& event = batch[i];
    if (event.kind == HandOffBatch::Kind::enabled_changed) {
      if (!log_backed_) continue;  // the lane applies it
      // Where the change sits among the mutations is certain only in the
      // log: it is read there before the next mutation.
      setting_pending_ = true;
      pending_enabled_ = enabled_from_json(batch.payload(event));
      continue;
    }
    if (!log_backed_) {
      add_event(batch, event, true);
      continue;
    }
    if (!catch_up_done_) {
      // The start-up catch-up has not reached its end (its read failed):
      // live mutations wait in the log until it has.
      stats_.catch_up_deferred.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (event.sequence <= checkpoint_.last_sequence) {
      stats_.catch_up_ignored_live.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (event.sequence != checkpoint_.last_sequence + 1 || setting_pending_) {
      // Mutations in between never reached us (the buffer or the host's
      // lane dropped them), or a setting changed: read the log up to here.
      flush_rows();
      if (stopping_.load()) return;  // read at the next start
      read_log(event.sequence);
      if (event.sequence <= checkpoint_.last_sequence) {
        stats_.catch_up_ignored_live.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
    }
    checkpoint_.last_sequence = event.sequence;
    add_event(batch, event, checkpoint_.enabled);
  }
  flush_rows();
  // What the full buffer refused: from the log, up to its end.
  if (log_backed_ && catch_up_done_ && batch.refused() > 0 && !stopping_.load()) read_log(kEndOfLog);
}

void Writer::add_event(const HandOffBatch& batch, const HandOffBatch::Event& event, bool record) {
  switch (event.kind) {
    case HandOffBatch::Kind::mutation:  // not mapped by the lane
      add_mutation(batch.type(event), batch.payload(event), event.committed_at_ms, record);
      return;
    case HandOffBatch::Kind::mapped:
    case HandOffBatch::Kind::mapped_bare:
      if (!record) break;
      if (event.has_counts) mapper_.count(batch.counts(event));
      if (rows_.size() <= used_rows_) rows_.emplace_back();
      mapper_.fill_row(batch.type(event),
                       event.kind == HandOffBatch::Kind::mapped ? std::optional(batch.payload(event)) : std::nullopt,
                       event.committed_at_ms, rows_[used_rows_]);
      if (++used_rows_ == kMaxRowsPerTransaction) flush_rows();
      return;
    case HandOffBatch::Kind::not_recorded:  // unmapped or invalid, as its counts say
      if (!record) break;
      if (event.has_counts) mapper_.count(batch.counts(event));
      return;
    case HandOffBatch::Kind::enabled_changed:
      return;
  }
  stats_.dropped_disabled.fetch_add(1, std::memory_order_relaxed);
}

void Writer::read_log(int64_t before_sequence) {
  stats_.catch_up_runs.fetch_add(1, std::memory_order_relaxed);
  const int64_t from = checkpoint_.last_sequence;
  bool saw_enabled_change = false;
  host_.read_event_log(from, [&](const wep_event& event) {
    if (stopping_.load(std::memory_order_relaxed)) return false;
    if (event.kind == WEP_EVENT_SETTING_CHANGED) {
      if (wep::view(event.setting.key) == kEnabledKey) {
        checkpoint_.enabled = enabled_from_json(wep::view(event.setting.value_json));
        saw_enabled_change = true;
      }
      return true;
    }
    if (event.kind != WEP_EVENT_MUTATION_COMMITTED) return true;
    if (event.mutation.sequence >= before_sequence) return false;
    if (event.mutation.sequence <= checkpoint_.last_sequence) return true;
    checkpoint_.last_sequence = event.mutation.sequence;
    stats_.catch_up_replayed.fetch_add(1, std::memory_order_relaxed);
    add_mutation(wep::view(event.mutation.type), wep::view(event.mutation.payload_json), event.mutation.committed_at_ms,
                 checkpoint_.enabled);
    return true;
  });
  // A host that logs mutations but not setting changes: the live value is
  // all there is (a host that logs them always has the change after
  // `from`, since it is stored before it is published).
  if (setting_pending_ && !saw_enabled_change) checkpoint_.enabled = pending_enabled_;
  setting_pending_ = false;
  flush_rows();
}

bool Writer::catch_up_at_start() {
  stats_.catch_up_runs.fetch_add(1, std::memory_order_relaxed);
  flush_rows();
  bool enabled_now = false;
  try {
    enabled_now = enabled_at_start_ ? *enabled_at_start_ : read_enabled_setting();
  } catch (const std::exception& e) {
    hooks_.report_error(std::string("analytics catch-up: ") + e.what());
    return false;
  }
  stats_.catch_up_holding.store(true, std::memory_order_relaxed);
  if (log_end_at_start_ - checkpoint_.last_sequence > kWalCopierFromMutations && set_automatic_checkpoints(false)) {
    wal_copier_ = std::make_unique<WalCopier>(config_.database_path, store_options_);
  }
  CatchUpPipe pipe(kCatchUpChunksInFlight);
  std::string read_error;   // the reader's, read after the join
  std::string store_error;  // this thread's
  std::thread reader;
  bool reached_end = false;
  try {
    reader = std::thread([&, position = checkpoint_] {
      read_for_catch_up(pipe, position, log_end_at_start_ + 1, enabled_now, &read_error);
    });
    pthread_setname_np(reader.native_handle(), "wep-analytics-r");
    CatchUpChunk chunk;
    uint64_t chunks = 0;
    while (pipe.take(chunk)) {
      if (!chunk.mapped) map_unmapped(chunk);
      checkpoint_ = chunk.checkpoint;
      insert_rows(std::span<const NewRow>(chunk.rows.data(), chunk.used), checkpoint_, chunk.discard_held);
      reached_end = chunk.reached_end;
      if (wal_copier_) {
        wal_copier_->committed();
        if (++chunks % kChunksPerWalRestart == 0 && !wal_copier_->wait_until_copied(kWalCopyWait)) end_wal_copier();
      }
    }
  } catch (const std::exception& e) {
    store_error = e.what();  // not a store error (those are handled inside): e.g. out of memory
  }
  pipe.close();
  if (reader.joinable()) reader.join();
  end_wal_copier();
  if (read_error.empty()) read_error = store_error;
  if (!read_error.empty()) hooks_.report_error("analytics catch-up: " + read_error);
  // The hold is released only when the checkpoint that says so is stored.
  const bool released = reached_end && committed_ && !committed_->holding;
  stats_.catch_up_holding.store(!released, std::memory_order_relaxed);
  if (released) hooks_.rows_stored();  // the held rows may go now
  return reached_end && read_error.empty();
}

void Writer::read_for_catch_up(CatchUpPipe& pipe, Checkpoint position, int64_t before_sequence, bool enabled_now,
                               std::string* error) noexcept {
  CatchUpChunk chunk;
  chunk.rows.reserve(kCatchUpRowsPerTransaction);
  position.holding = true;
  // Analytics off now: nothing from before is recorded, including what an
  // earlier catch-up cut short holds.
  chunk.discard_held = !enabled_now;
  bool pipe_open = true;
  bool cut_short = false;  // stopped before the log's end
  bool reached_end = false;
  try {
    const bool read = host_.read_event_log(position.last_sequence, [&](const wep_event& event) {
      // The end is checked first: a catch-up with nothing left to read has
      // reached it even when a stop came before it began.
      if (event.kind == WEP_EVENT_MUTATION_COMMITTED && event.mutation.sequence >= before_sequence) {
        reached_end = true;
        return false;
      }
      if (stopping_.load(std::memory_order_relaxed)) {
        cut_short = true;
        return false;
      }
      if (event.kind == WEP_EVENT_SETTING_CHANGED) {
        if (wep::view(event.setting.key) == kEnabledKey) {
          position.enabled = enabled_from_json(wep::view(event.setting.value_json));
          if (!position.enabled) {
            // Everything read so far precedes this change: privacy wins.
            stats_.dropped_disabled.fetch_add(static_cast<int64_t>(chunk.used), std::memory_order_relaxed);
            chunk.drop_contents();
            chunk.discard_held = true;
          }
        }
        return true;
      }
      if (event.kind != WEP_EVENT_MUTATION_COMMITTED) return true;
      if (event.mutation.sequence <= position.last_sequence) return true;
      position.last_sequence = event.mutation.sequence;
      stats_.catch_up_replayed.fetch_add(1, std::memory_order_relaxed);
      if (!position.enabled || !enabled_now) {
        stats_.dropped_disabled.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      const std::string_view type = wep::view(event.mutation.type);
      const std::string_view payload = wep::view(event.mutation.payload_json);
      // Who maps a chunk is decided at its first mutation (see
      // catch_up_pipe.hpp).
      if (chunk.used == 0) chunk.mapped = pipe.waiting() >= kMapWhenWaiting;
      if (chunk.mapped) {
        if (chunk.rows.size() <= chunk.used) chunk.rows.emplace_back();
        if (mapper_.map(type, payload, event.mutation.committed_at_ms, chunk.rows[chunk.used])) ++chunk.used;
      } else if (mapper_.check_type(type)) {
        chunk.add_unmapped(type, payload, event.mutation.committed_at_ms);
      }
      if (chunk.used == kCatchUpRowsPerTransaction ||
          (!chunk.mapped && chunk.unmapped_text.size() >= CatchUpChunk::kMaxUnmappedTextBytes)) {
        chunk.checkpoint = position;
        pipe_open = pipe.put(chunk);
        return pipe_open;
      }
      return true;
    });
    if (!read) {
      *error = "the host could not read its event log";
      reached_end = false;
    } else if (pipe_open && !cut_short) {
      reached_end = true;  // the log ended before a later mutation: also the end
    }
  } catch (const std::exception& e) {
    *error = e.what();
    reached_end = false;
  } catch (...) {
    *error = "unknown error reading the host's event log";
    reached_end = false;
  }
  chunk.checkpoint = position;  // what was read before a stop or an error is kept (still held)
  if (reached_end) {
    // A value changed without a log entry counts only as off; the hold ends.
    chunk.checkpoint.enabled = position.enabled && enabled_now;
    chunk.checkpoint.holding = false;
    chunk.checkpoint.hold_from_id = 0;
    chunk.reached_end = true;
  }
  if (pipe_open) pipe.put(chunk);
  pipe.finish();
}

void Writer::map_unmapped(CatchUpChunk& chunk) {
  size_t rows = 0;
  for (size_t i = 0; i < chunk.used; ++i) {
    const CatchUpChunk::Unmapped& entry = chunk.unmapped[i];
    if (chunk.rows.size() <= rows) chunk.rows.emplace_back();
    if (catch_up_mapper_.map(chunk.type_of(entry), chunk.payload_of(entry), entry.committed_at_ms, chunk.rows[rows])) {
      ++rows;
    }
  }
  chunk.used = rows;
  chunk.mapped = true;
}

void Writer::add_mutation(std::string_view type, std::string_view payload, int64_t committed_at_ms, bool record) {
  if (!record) {
    stats_.dropped_disabled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (rows_.size() <= used_rows_) rows_.emplace_back();
  if (mapper_.map(type, payload, committed_at_ms, rows_[used_rows_])) ++used_rows_;
  if (used_rows_ == kMaxRowsPerTransaction) flush_rows();
}

void Writer::flush_rows() {
  std::optional<Checkpoint> checkpoint;
  if (log_backed_ && committed_ != checkpoint_) checkpoint = checkpoint_;
  const size_t used = std::exchange(used_rows_, 0);
  if (used == 0 && !checkpoint) return;
  insert_rows(std::span<const NewRow>(rows_.data(), used), checkpoint);
}

void Writer::insert_rows(std::span<const NewRow> rows, const std::optional<Checkpoint>& checkpoint, bool discard_held) {
  stats_.checkpoint.store(log_backed_ ? checkpoint_.last_sequence : -1, std::memory_order_relaxed);
  const auto count = static_cast<int64_t>(rows.size());
  bool recovered = false;
  for (int attempt = 0;; ++attempt) {
    if (!store_ && !open_store()) break;
    try {
      int64_t discarded = 0;
      const int64_t dropped_by_cap =
          store_->insert_capped(rows, config_.max_queue_rows, checkpoint, discard_held, &discarded);
      if (checkpoint) committed_ = checkpoint;
      if (discarded > 0) {
        stats_.catch_up_discarded.fetch_add(discarded, std::memory_order_relaxed);
        stats_.dropped_disabled.fetch_add(discarded, std::memory_order_relaxed);
      }
      stats_.stored.fetch_add(count, std::memory_order_relaxed);
      if (dropped_by_cap > 0) stats_.dropped_queue_cap.fetch_add(dropped_by_cap, std::memory_order_relaxed);
      if (store_failing_) {
        store_failing_ = false;
        host_.log(WEP_LOG_INFO, "the queue database stores rows again");
      }
      if (count > 0) hooks_.rows_stored();
      return;
    } catch (const StoreError& e) {
      if (is_busy(e) && attempt < kBusyRetries) continue;
      if (is_moved(e) && !recovered) {
        recovered = true;
        if (reopen_changed_file()) continue;
        break;
      }
      if (is_corruption(e) && !recovered) {
        recovered = true;
        if (recover_from_corruption(e.what())) continue;
        break;
      }
      hooks_.report_error(e.what());
      store_.reset();  // reopen for the next batch: the cause may pass
      break;
    }
  }
  store_failing_ = true;
  stats_.dropped_store_error.fetch_add(count, std::memory_order_relaxed);
}

bool Writer::set_automatic_checkpoints(bool on) {
  if (!store_) return false;
  try {
    store_->set_automatic_checkpoints(on);
    return true;
  } catch (const StoreError&) {
    return false;  // the next write meets the cause and handles it
  }
}

void Writer::end_wal_copier() {
  if (!wal_copier_) return;
  wal_copier_->stop();
  wal_copier_.reset();
  set_automatic_checkpoints(true);
}

bool Writer::open_store() {
  try {
    store_ = std::make_unique<QueueStore>(config_.database_path, store_options_);
  } catch (const StoreError& e) {
    if (is_corruption(e)) return recover_from_corruption(e.what());
    hooks_.report_error(e.what());
    return false;
  }
  remember_store_file();
  return true;
}

void Writer::remember_store_file() {
  struct stat file {};
  if (::stat(config_.database_path.c_str(), &file) == 0) {
    store_device_ = file.st_dev;
    store_inode_ = file.st_ino;
  }
}

bool Writer::queue_file_changed() const {
  struct stat file {};
  if (::stat(config_.database_path.c_str(), &file) != 0) return errno == ENOENT;
  return file.st_dev != store_device_ || file.st_ino != store_inode_;
}

bool Writer::reopen_changed_file() {
  end_wal_copier();  // its connection goes with the others
  struct stat file {};
  const bool replaced = ::stat(config_.database_path.c_str(), &file) == 0;
  // The open file's WAL still has the name at the path: SQLite would replay
  // it into whatever file is there next. Emptied first (the other
  // connections of this process are closed first so that they hold no
  // snapshot that keeps the WAL).
  hooks_.close_connections();
  if (store_) {
    try {
      store_->checkpoint_and_empty_wal();
    } catch (const StoreError& e) {
      hooks_.report_error(e.what());
    }
  }
  store_.reset();
  if (!replaced) {
    // A -wal / -shm left without its database belongs to the deleted file:
    // SQLite would replay it into the fresh one.
    std::error_code ignored;
    std::filesystem::remove(config_.database_path + "-wal", ignored);
    std::filesystem::remove(config_.database_path + "-shm", ignored);
  }
  stats_.queue_file_replaced.fetch_add(1, std::memory_order_relaxed);
  committed_.reset();  // the file at the path has not got this writer's checkpoint
  hooks_.report_error(replaced ? "the queue database " + config_.database_path +
                                     " was replaced by another file; the queue goes on in that file"
                               : "the queue database " + config_.database_path +
                                     " was deleted; a fresh queue was created (the rows it held are lost)");
  const bool opened = open_store();  // before the other connections: none of them creates the file
  hooks_.reopen_connections();
  return opened;
}

bool Writer::recover_from_corruption(const std::string& reason) {
  end_wal_copier();  // its connection goes with the others
  // Every connection to the damaged file goes first: ours and the others'
  // (the shared reader, the flusher's queue); the transport stays loaded.
  store_.reset();
  hooks_.close_connections();
  bool recovered = false;
  try {
    const std::string moved_to = wep::sqlite::move_aside_damaged_database(config_.database_path);
    stats_.corrupt_recoveries.fetch_add(1, std::memory_order_relaxed);
    store_ = std::make_unique<QueueStore>(config_.database_path, store_options_);
    remember_store_file();
    committed_.reset();  // the fresh file has no checkpoint yet
    // The rows still readable in the damaged file (now at moved_to, its
    // bytes kept) move into the fresh queue with their ids.
    SalvageResult salvaged;
    std::string salvage_note;
    try {
      salvaged = salvage_queue_rows(moved_to, kSalvageChunkRows,
                                    [&](std::span<const QueuedRow> rows) { store_->restore(rows); });
      if (salvaged.checkpoint) {
        store_->restore({}, salvaged.checkpoint);
        committed_ = salvaged.checkpoint;
      }
    } catch (const StoreError& e) {
      salvage_note = std::string(" (salvage stopped: ") + e.what() + ")";
    }
    stats_.salvaged_rows.fetch_add(salvaged.rows, std::memory_order_relaxed);
    hooks_.report_error("the queue database was damaged (" + reason + "); " + std::to_string(salvaged.rows) +
                        " readable rows were salvaged into a fresh queue" + salvage_note +
                        " and the file was moved aside to " + moved_to);
    recovered = true;
  } catch (const StoreError& e) {
    store_.reset();
    hooks_.report_error(std::string("the queue database is damaged (") + reason +
                        ") and could not be replaced: " + e.what());
  }
  hooks_.reopen_connections();
  return recovered;
}

void Writer::begin_age_out(AgeOutPass& pass) {
  pass.active = true;
  pass.after_id = 0;
  pass.cutoff_created_at =
      created_at_from_ms(unix_now_ms() - static_cast<int64_t>(config_.retention_days) * kMillisecondsPerDay);
}

void Writer::age_out_step(AgeOutPass& pass) {
  if (!store_ && !open_store()) {
    pass.active = false;  // tried again at the next maintenance time
    return;
  }
  try {
    const AgeOutStep step = store_->age_out_step(pass.cutoff_created_at, pass.after_id, kAgeOutScanRows);
    if (step.deleted > 0) stats_.aged_out.fetch_add(step.deleted, std::memory_order_relaxed);
    pass.after_id = step.last_id;
    if (step.finished) {
      store_->age_out_dead_letter(pass.cutoff_created_at);
      pass.active = false;
    }
  } catch (const StoreError& e) {
    pass.active = false;
    if (is_busy(e)) return;  // another process is busy: next time
    if (is_corruption(e)) {
      recover_from_corruption(e.what());
      return;
    }
    hooks_.report_error(e.what());
    store_.reset();
  }
}

}  // namespace wep::analytics
