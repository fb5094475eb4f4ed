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

// Rows per transaction when salvaged rows move into a fresh queue.
constexpr size_t kSalvageChunkRows = 4096;

constexpr std::string_view kEnabledKey = "analytics_enabled";
constexpr int64_t kEndOfLog = std::numeric_limits<int64_t>::max();

}  // namespace

bool enabled_from_json(std::string_view value_json) {
  const auto first = value_json.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return false;
  const auto last = value_json.find_last_not_of(" \t\r\n");
  return value_json.substr(first, last - first + 1) == "true";
}

Writer::Writer(const AnalyticsConfig& config, const StoreOptions& store_options, wep::Host host, Stats& stats,
               HandOffBuffer& buffer, WriterProgress& progress, EventMapper& mapper, Hooks hooks)
    : config_(config),
      store_options_(store_options),
      host_(host),
      stats_(stats),
      buffer_(buffer),
      progress_(progress),
      mapper_(mapper),
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
    try {
      // What was committed while the plugin was not running, privacy first;
      // what follows is live (processed in order as it comes).
      read_log(log_end_at_start_ + 1, /*privacy_first=*/true);
    } catch (const std::exception& e) {
      hooks_.report_error(std::string("analytics catch-up: ") + e.what());
    }
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
        // Mutations the host's lane dropped show up here at the latest.
        if (log_backed_ && !stopping_.load() &&
            host_.last_mutation_sequence().value_or(0) > checkpoint_.last_sequence) {
          read_log(kEndOfLog, /*privacy_first=*/false);
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
      add_mutation(batch.type(event), batch.payload(event), event.committed_at_ms, true);
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
      read_log(event.sequence, /*privacy_first=*/false);
      if (event.sequence <= checkpoint_.last_sequence) {
        stats_.catch_up_ignored_live.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
    }
    checkpoint_.last_sequence = event.sequence;
    add_mutation(batch.type(event), batch.payload(event), event.committed_at_ms, checkpoint_.enabled);
  }
  flush_rows();
  // What the full buffer refused: from the log, up to its end.
  if (log_backed_ && batch.refused() > 0 && !stopping_.load()) read_log(kEndOfLog, /*privacy_first=*/false);
}

void Writer::read_log(int64_t before_sequence, bool privacy_first) {
  stats_.catch_up_runs.fetch_add(1, std::memory_order_relaxed);
  const int64_t from = checkpoint_.last_sequence;
  // Privacy first: the last change to false in the part of the log about to
  // be read; nothing committed before it is recorded now, nor anything if
  // analytics is off now.
  const bool enabled_now = privacy_first ? enabled_at_start_ : true;
  int64_t last_disabled_at = -1;
  if (privacy_first) {
    host_.read_event_log(from, [&](const wep_event& event) {
      if (event.kind == WEP_EVENT_MUTATION_COMMITTED && event.mutation.sequence >= before_sequence) return false;
      if (event.kind == WEP_EVENT_SETTING_CHANGED && wep::view(event.setting.key) == kEnabledKey &&
          !enabled_from_json(wep::view(event.setting.value_json))) {
        last_disabled_at = std::max(last_disabled_at, event.mutation.sequence);
      }
      return !stopping_.load(std::memory_order_relaxed);
    });
  }
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
    const bool record = checkpoint_.enabled && enabled_now && event.mutation.sequence > last_disabled_at;
    add_mutation(wep::view(event.mutation.type), wep::view(event.mutation.payload_json), event.mutation.committed_at_ms,
                 record);
    return true;
  });
  // A host that logs mutations but not setting changes: the live value is
  // all there is (a host that logs them always has the change after
  // `from`, since it is stored before it is published).
  if (setting_pending_ && !saw_enabled_change) checkpoint_.enabled = pending_enabled_;
  setting_pending_ = false;
  // A value the host changed without logging it (e.g. in its config) counts
  // only as off.
  if (privacy_first) checkpoint_.enabled = checkpoint_.enabled && enabled_now;
  flush_rows();
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

void Writer::insert_rows(std::span<const NewRow> rows, const std::optional<Checkpoint>& checkpoint) {
  stats_.checkpoint.store(log_backed_ ? checkpoint_.last_sequence : -1, std::memory_order_relaxed);
  const auto count = static_cast<int64_t>(rows.size());
  bool recovered = false;
  for (int attempt = 0;; ++attempt) {
    if (!store_ && !open_store()) break;
    try {
      const int64_t dropped_by_cap = store_->insert_capped(rows, config_.max_queue_rows, checkpoint);
      if (checkpoint) committed_ = checkpoint;
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
  committed_.reset();  // the file at the path has not got this writer's checkpoint
  // The fresh file is opened before the other connections may open the path
  // again (none of them creates it); the change is counted once it is open.
  const bool opened = open_store();
  hooks_.reopen_connections();
  hooks_.report_error(replaced ? "the queue database " + config_.database_path +
                                     " was replaced by another file; the queue goes on in that file"
                               : "the queue database " + config_.database_path +
                                     " was deleted; a fresh queue was created (the rows it held are lost)");
  stats_.queue_file_replaced.fetch_add(1, std::memory_order_relaxed);  // after the error: stats show both
  return opened;
}

bool Writer::recover_from_corruption(const std::string& reason) {
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
