// The analytics effect plugin: the entry point and the wiring of the use
// cases to the host's bus, the writer thread and the flusher.
//
// Threads:
//   lane    (the host's)  on_event: EnqueueAnalyticsEventUseCase hands the
//                          event to the HandOffBuffer; settings and
//                          connectivity are applied in bus order.
//   writer  (ours)         maps events to rows (EventMapper) and inserts each
//                          batch in one transaction (group commit); runs the
//                          age-out; recovers from a damaged database.
//   flusher (ours, if a transport is configured) sends rows (flusher.cpp).
//   any host thread        pending_count (barrier behind the writer, then an
//                          O(1) count), stats_json.
//
// Idle, no thread polls: the writer sleeps until an event arrives, stop, or
// the maintenance timer (maintenance_interval_ms) is due; the flusher and its
// queue thread sleep until rows are stored, connectivity or analytics_enabled
// change, or stop (flusher.cpp). The maintenance tick also has the flusher
// look at the queue, so rows another connection stored (another process on
// the same file) are sent at least every maintenance_interval_ms.
//
// A store problem (disk full, read-only or damaged file) never reaches the
// host as a failure: rows that cannot be stored are dropped and counted,
// the error is logged (once per distinct message) and shown as last_error.
#include <pthread.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <wep/version.h>

#include <atomic>
#include <boost/dll/runtime_symbol_info.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <wep/plugin.hpp>

#include "config.hpp"
#include "event_mapper.hpp"
#include "flusher.hpp"
#include "hand_off_buffer.hpp"
#include "queue_store.hpp"
#include "stats.hpp"
#include "use_cases.hpp"

namespace analytics {
namespace {

// The hand-off buffer's byte bound (besides buffer_capacity events): caps the
// memory that mutation payloads waiting for the writer can take.
constexpr size_t kBufferMaxBytes = size_t{64} << 20;
// Rows per insert transaction (group commit). Past about a thousand rows a
// bigger transaction saves nothing and only grows the WAL and spills the
// page cache; the hand-off batch is split into transactions of this size.
constexpr size_t kMaxRowsPerTransaction = 4096;
// Rows one age-out step looks at: a few milliseconds of write lock.
constexpr int64_t kAgeOutScanRows = 20000;
// Extra attempts of a batch when another connection held the lock past the
// busy timeout.
constexpr int kBusyRetries = 3;
constexpr int64_t kMillisecondsPerDay = 86'400'000;

// The folder of this plugin file: a relative transport.plugin is resolved
// against it (plugin files are installed side by side).
std::string plugin_folder() {
  try {
    return boost::dll::this_line_location().parent_path().string();
  } catch (...) {
    return {};
  }
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class AnalyticsPlugin final : public wep::EffectPlugin {
 public:
  explicit AnalyticsPlugin(wep::Host host) : host_(host) {}
  ~AnalyticsPlugin() override { shut_down(0, /*log_summary=*/false); }

  void start() override;
  void on_event(const wep_event& event) override;
  std::optional<int64_t> pending_count() override;
  std::string stats_json() override;
  bool stop(uint32_t timeout_ms) override { return shut_down(timeout_ms, /*log_summary=*/true); }

 private:
  struct AgeOutPass {
    bool active = false;
    int64_t after_id = 0;
    std::string cutoff_created_at;
  };

  bool shut_down(uint32_t timeout_ms, bool log_summary);
  void writer_main() noexcept;
  void store_batch(const HandOffBatch& batch, std::vector<NewRow>& rows);
  void insert_rows(std::span<const NewRow> rows);
  bool open_writer_store();
  bool recover_from_corruption(const std::string& reason);
  void begin_age_out(AgeOutPass& pass);
  void age_out_step(AgeOutPass& pass);
  void report_store_error(const std::string& message);
  bool read_enabled_setting();
  void apply_enabled(bool enabled);
  void notify_rows_stored();

  wep::Host host_;
  AnalyticsConfig config_;
  StoreOptions store_options_;
  Stats stats_;

  // Set up in start() before the writer thread and the subscription exist;
  // read-only afterwards.
  std::unique_ptr<HandOffBuffer> buffer_;
  std::unique_ptr<EnqueueAnalyticsEventUseCase> enqueue_;
  WriterProgress progress_;
  std::unique_ptr<SharedQueueStore> reader_;
  std::unique_ptr<PendingAnalyticsCountUseCase> pending_;

  // The writer thread's own (start() uses them before the thread exists).
  std::unique_ptr<EventMapper> mapper_;
  std::unique_ptr<QueueStore> writer_store_;
  bool store_failing_ = false;
  std::thread writer_;

  // The flusher and the connectivity it was last told; replaced when a
  // damaged database is moved aside.
  std::mutex flusher_mutex_;
  std::unique_ptr<Flusher> flusher_;
  std::atomic<bool> online_{false};

  // analytics_enabled: once the bus has told us a value, start() must not
  // overwrite it with an older read.
  std::mutex setting_mutex_;
  bool setting_seen_on_bus_ = false;

  std::mutex error_mutex_;
  std::string last_logged_error_;

  std::mutex lifecycle_mutex_;
  bool stopped_ = false;
};

void AnalyticsPlugin::start() {
  config_ = parse_config(host_.config_json(), host_.data_dir(), plugin_folder());
  store_options_.busy_timeout_ms = config_.busy_timeout_ms;
  store_options_.max_database_bytes = config_.max_database_bytes;

  std::optional<std::string> user_id = host_.pseudonymous_id();
  if (!user_id) host_.log(WEP_LOG_WARN, "the host has no pseudonymous id: rows get a NULL user_id");
  mapper_ = std::make_unique<EventMapper>(config_, std::move(user_id), stats_);
  buffer_ = std::make_unique<HandOffBuffer>(config_.buffer_capacity, kBufferMaxBytes);
  enqueue_ = std::make_unique<EnqueueAnalyticsEventUseCase>(*buffer_, stats_);
  reader_ = std::make_unique<SharedQueueStore>(config_.database_path, store_options_);
  pending_ = std::make_unique<PendingAnalyticsCountUseCase>(*buffer_, progress_, *reader_);

  // The database: open (a damaged file is moved aside), repair the counter,
  // age out. Failures are reported, not fatal: the host must carry on.
  std::error_code ignored;  // a missing folder shows up as an open error below
  std::filesystem::create_directories(std::filesystem::path(config_.database_path).parent_path(), ignored);
  if (open_writer_store()) {
    try {
      writer_store_->recount();
    } catch (const StoreError& e) {
      if (is_corruption(e)) {
        recover_from_corruption(e.what());
      } else {
        report_store_error(e.what());
      }
    }
    AgeOutPass pass;
    begin_age_out(pass);
    while (pass.active) age_out_step(pass);
  }

  apply_enabled(read_enabled_setting());
  if (!config_.transport.plugin_path.empty()) {
    auto flusher = std::make_unique<Flusher>(config_, host_, stats_);
    flusher->start();  // a bad transport config is refused here
    flusher->set_enabled(enqueue_->enabled());
    std::lock_guard lock(flusher_mutex_);
    flusher_ = std::move(flusher);
  }

  writer_ = std::thread([this] { writer_main(); });
  pthread_setname_np(writer_.native_handle(), "wep-analytics-w");  // for debuggers and profilers

  if (host_.subscribe(WEP_EVENT_MUTATION_COMMITTED | WEP_EVENT_CONNECTIVITY_CHANGED | WEP_EVENT_SETTING_CHANGED) !=
      WEP_OK) {
    throw wep::Error(WEP_ERR_FAILED, "analytics: the host refused the bus subscription");
  }
  {
    // A change published between the first read and the subscription is
    // only visible here; one published after it arrives on the bus.
    std::lock_guard lock(setting_mutex_);
    if (!setting_seen_on_bus_) apply_enabled(read_enabled_setting());
  }

  std::string summary = "started: queue " + config_.database_path + ", " + std::to_string(config_.events.size()) +
                        " mapped mutation types, " +
                        (config_.transport.plugin_path.empty() ? std::string("no transport (rows are only queued)")
                                                               : "transport " + config_.transport.plugin_path) +
                        (enqueue_->enabled() ? "" : ", analytics disabled");
  host_.log(WEP_LOG_INFO, summary);
}

void AnalyticsPlugin::on_event(const wep_event& event) {
  if (!enqueue_) return;
  switch (event.kind) {
    case WEP_EVENT_MUTATION_COMMITTED:
      enqueue_->execute(wep::view(event.mutation.type), wep::view(event.mutation.payload_json),
                        event.mutation.committed_at_ms);
      break;
    case WEP_EVENT_SETTING_CHANGED:
      if (wep::view(event.setting.key) == "analytics_enabled") {
        rapidjson::Document value;
        const auto text = wep::view(event.setting.value_json);
        value.Parse(text.data(), text.size());
        bool enabled = false;
        if (!value.HasParseError() && value.IsBool()) {
          enabled = value.GetBool();
        } else {
          host_.log(WEP_LOG_WARN, "analytics_enabled is not true or false; treating it as false");
        }
        std::lock_guard lock(setting_mutex_);
        setting_seen_on_bus_ = true;
        if (enabled != enqueue_->enabled()) {
          host_.log(WEP_LOG_INFO, enabled ? "analytics enabled" : "analytics disabled: nothing is recorded or sent");
        }
        apply_enabled(enabled);
      }
      break;
    case WEP_EVENT_CONNECTIVITY_CHANGED: {
      std::lock_guard lock(flusher_mutex_);
      online_.store(event.connectivity.online != 0);
      if (flusher_) flusher_->set_online(online_.load());
      break;
    }
    default:
      break;
  }
}

std::optional<int64_t> AnalyticsPlugin::pending_count() {
  if (!pending_) throw wep::Error(WEP_ERR_FAILED, "analytics: not started");
  return pending_->execute();
}

bool AnalyticsPlugin::read_enabled_setting() {
  const std::optional<std::string> value = host_.setting_json("analytics_enabled");
  if (!value) return true;  // the spec's default
  rapidjson::Document document;
  document.Parse(value->data(), value->size());
  if (!document.HasParseError() && document.IsBool()) return document.GetBool();
  host_.log(WEP_LOG_WARN, "analytics_enabled is not true or false; treating it as false");
  return false;  // privacy first when the value is unclear
}

void AnalyticsPlugin::apply_enabled(bool enabled) {
  enqueue_->set_enabled(enabled);
  std::lock_guard lock(flusher_mutex_);
  if (flusher_) flusher_->set_enabled(enabled);
}

void AnalyticsPlugin::notify_rows_stored() {
  std::lock_guard lock(flusher_mutex_);
  if (flusher_) flusher_->rows_stored();
}

void AnalyticsPlugin::writer_main() noexcept {
  HandOffBatch batch;
  std::vector<NewRow> rows;  // reused: rows keep their strings' capacity
  const auto interval = std::chrono::milliseconds(config_.maintenance_interval_ms);
  auto next_maintenance = std::chrono::steady_clock::now() + interval;
  AgeOutPass pass;
  for (;;) {
    bool stopped = false;
    // While an age-out pass is under way, do one step per loop without
    // waiting, so event batches and age-out steps interleave.
    const auto deadline = pass.active ? std::chrono::steady_clock::now() : next_maintenance;
    const uint64_t ticket = buffer_->take(batch, deadline, &stopped);
    try {
      if (!batch.empty()) store_batch(batch, rows);
    } catch (const std::exception& e) {
      // Not a store error (those are handled inside): e.g. out of memory.
      stats_.dropped_store_error.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
      report_store_error(std::string("analytics writer: ") + e.what());
    }
    progress_.advance(ticket);
    if (stopped && batch.empty()) break;  // everything accepted is stored
    try {
      if (!pass.active && std::chrono::steady_clock::now() >= next_maintenance) {
        begin_age_out(pass);
        next_maintenance = std::chrono::steady_clock::now() + interval;
        notify_rows_stored();  // rows stored by another connection: see the top of this file
      }
      if (pass.active) age_out_step(pass);
    } catch (const std::exception& e) {
      pass.active = false;
      report_store_error(std::string("analytics age-out: ") + e.what());
    }
  }
  progress_.close();
}

void AnalyticsPlugin::store_batch(const HandOffBatch& batch, std::vector<NewRow>& rows) {
  size_t used = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& event = batch[i];
    if (rows.size() <= used) rows.emplace_back();
    if (mapper_->map(batch.type(event), batch.payload(event), event.committed_at_ms, rows[used])) ++used;
    if (used == kMaxRowsPerTransaction) {
      insert_rows(std::span<const NewRow>(rows.data(), used));
      used = 0;
    }
  }
  if (used > 0) insert_rows(std::span<const NewRow>(rows.data(), used));
}

void AnalyticsPlugin::insert_rows(std::span<const NewRow> rows) {
  const auto count = static_cast<int64_t>(rows.size());
  bool recovered = false;
  for (int attempt = 0;; ++attempt) {
    if (!writer_store_ && !open_writer_store()) break;
    try {
      const int64_t dropped_by_cap = writer_store_->insert_capped(rows, config_.max_queue_rows);
      stats_.stored.fetch_add(count, std::memory_order_relaxed);
      if (dropped_by_cap > 0) stats_.dropped_queue_cap.fetch_add(dropped_by_cap, std::memory_order_relaxed);
      if (store_failing_) {
        store_failing_ = false;
        host_.log(WEP_LOG_INFO, "the queue database stores rows again");
      }
      notify_rows_stored();
      return;
    } catch (const StoreError& e) {
      if (is_busy(e) && attempt < kBusyRetries) continue;
      if (is_corruption(e) && !recovered) {
        recovered = true;
        if (recover_from_corruption(e.what())) continue;
        break;
      }
      report_store_error(e.what());
      writer_store_.reset();  // reopen for the next batch: the cause may pass
      break;
    }
  }
  store_failing_ = true;
  stats_.dropped_store_error.fetch_add(count, std::memory_order_relaxed);
}

bool AnalyticsPlugin::open_writer_store() {
  try {
    writer_store_ = std::make_unique<QueueStore>(config_.database_path, store_options_);
    return true;
  } catch (const StoreError& e) {
    if (is_corruption(e)) return recover_from_corruption(e.what());
    report_store_error(e.what());
    return false;
  }
}

bool AnalyticsPlugin::recover_from_corruption(const std::string& reason) {
  // Every connection to the damaged file goes first: ours, the reader's and
  // the flusher's (which is restarted on the fresh file).
  writer_store_.reset();
  reader_->close();
  bool restart_flusher = false;
  {
    std::lock_guard lock(flusher_mutex_);
    if (flusher_) {
      flusher_->stop(config_.transport.stop_timeout_ms);
      flusher_.reset();
      restart_flusher = true;
    }
  }

  bool recovered = false;
  try {
    const std::string moved_to = move_aside_corrupt_database(config_.database_path);
    stats_.corrupt_recoveries.fetch_add(1, std::memory_order_relaxed);
    writer_store_ = std::make_unique<QueueStore>(config_.database_path, store_options_);
    report_store_error("the queue database was damaged (" + reason + "); it was moved aside to " + moved_to +
                       " and a fresh one was created");
    recovered = true;
  } catch (const StoreError& e) {
    writer_store_.reset();
    report_store_error(std::string("the queue database is damaged (") + reason +
                       ") and could not be replaced: " + e.what());
  }

  if (restart_flusher) {
    try {
      auto flusher = std::make_unique<Flusher>(config_, host_, stats_);
      flusher->start();
      std::lock_guard lock(flusher_mutex_);
      flusher->set_enabled(enqueue_->enabled());
      flusher->set_online(online_.load());
      flusher_ = std::move(flusher);
    } catch (const std::exception& e) {
      report_store_error(std::string("the flusher could not be restarted: ") + e.what());
    }
  }
  return recovered;
}

void AnalyticsPlugin::begin_age_out(AgeOutPass& pass) {
  pass.active = true;
  pass.after_id = 0;
  pass.cutoff_created_at =
      created_at_from_ms(unix_now_ms() - static_cast<int64_t>(config_.retention_days) * kMillisecondsPerDay);
}

void AnalyticsPlugin::age_out_step(AgeOutPass& pass) {
  if (!writer_store_ && !open_writer_store()) {
    pass.active = false;  // tried again at the next maintenance time
    return;
  }
  try {
    const AgeOutStep step = writer_store_->age_out_step(pass.cutoff_created_at, pass.after_id, kAgeOutScanRows);
    if (step.deleted > 0) stats_.aged_out.fetch_add(step.deleted, std::memory_order_relaxed);
    pass.after_id = step.last_id;
    if (step.finished) {
      writer_store_->age_out_dead_letter(pass.cutoff_created_at);
      pass.active = false;
    }
  } catch (const StoreError& e) {
    pass.active = false;
    if (is_busy(e)) return;  // another process is busy: next time
    if (is_corruption(e)) {
      recover_from_corruption(e.what());
      return;
    }
    report_store_error(e.what());
    writer_store_.reset();
  }
}

void AnalyticsPlugin::report_store_error(const std::string& message) {
  stats_.set_last_error(message);
  std::lock_guard lock(error_mutex_);
  if (message == last_logged_error_) return;  // once per distinct message
  last_logged_error_ = message;
  host_.log(WEP_LOG_ERROR, message);
}

std::string AnalyticsPlugin::stats_json() {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto counter = [&w](const char* name, const std::atomic<int64_t>& value) {
    w.Key(name);
    w.Int64(value.load(std::memory_order_relaxed));
  };
  std::optional<int64_t> pending;
  std::optional<int64_t> dead_letter_rows;
  if (reader_) {
    try {
      reader_->with([&](QueueStore& store) {
        pending = store.count();
        dead_letter_rows = store.dead_letter_count();
        return 0;
      });
    } catch (const StoreError&) {
      // shown as null; last_error tells why
    }
  }
  const Stats& s = stats_;
  w.StartObject();
  counter("accepted", s.accepted);
  counter("stored", s.stored);
  w.Key("dropped");
  w.StartObject();
  counter("disabled", s.dropped_disabled);
  counter("unmapped", s.dropped_unmapped);
  counter("buffer_full", s.dropped_buffer_full);
  counter("invalid", s.dropped_invalid);
  counter("store_error", s.dropped_store_error);
  counter("queue_cap", s.dropped_queue_cap);
  w.EndObject();
  w.Key("properties_dropped");
  w.StartObject();
  counter("pii", s.properties_dropped_pii);
  counter("email", s.pii_email);
  counter("phone", s.pii_phone);
  counter("ip", s.pii_ip);
  counter("url", s.pii_url);
  counter("long_number", s.pii_long_number);
  counter("type", s.properties_dropped_type);
  counter("long_string", s.properties_dropped_long);
  w.EndObject();
  counter("aged_out", s.aged_out);
  w.Key("pending");
  pending ? w.Int64(*pending) : w.Null();
  w.Key("dead_letter_rows");
  dead_letter_rows ? w.Int64(*dead_letter_rows) : w.Null();
  counter("delivered", s.delivered);
  counter("dead_lettered", s.dead_lettered);
  counter("requests", s.requests);
  counter("requests_in_flight", s.requests_in_flight);
  counter("retries", s.retries);
  counter("splits", s.splits);
  counter("corrupt_recoveries", s.corrupt_recoveries);
  w.Key("flusher");
  w.String(Stats::flusher_state_name(s.flusher_state.load()));
  w.Key("enabled");
  w.Bool(enqueue_ ? enqueue_->enabled() : false);
  w.Key("online");
  w.Bool(online_.load());
  w.Key("database");
  w.String(config_.database_path.c_str());
  w.Key("last_error");
  const std::string last_error = s.last_error();
  last_error.empty() ? w.Null() : w.String(last_error.c_str(), static_cast<rapidjson::SizeType>(last_error.size()));
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

bool AnalyticsPlugin::shut_down(uint32_t timeout_ms, bool log_summary) {
  std::lock_guard lifecycle(lifecycle_mutex_);
  if (stopped_) return true;
  stopped_ = true;
  // The host sends no event after stop(); the writer stores everything
  // accepted, then ends. Only then does the flusher stop.
  if (log_summary && buffer_) {
    host_.log(WEP_LOG_INFO, "stopping: storing " + std::to_string(buffer_->buffered()) + " buffered events");
  }
  if (buffer_) buffer_->request_stop();
  if (writer_.joinable()) writer_.join();
  progress_.close();
  bool completed = true;
  {
    std::lock_guard lock(flusher_mutex_);
    if (flusher_) {
      completed = flusher_->stop(timeout_ms);
      flusher_.reset();
    }
  }
  writer_store_.reset();
  if (reader_) reader_->close();
  if (log_summary && buffer_) {
    host_.log(WEP_LOG_INFO, "stopped: " + std::to_string(stats_.accepted.load()) + " events accepted, " +
                                std::to_string(stats_.stored.load()) + " rows stored, " +
                                std::to_string(stats_.delivered.load()) + " delivered");
  }
  return completed;
}

std::unique_ptr<wep::EffectPlugin> make_analytics_plugin(wep::Host host) {
  return std::make_unique<AnalyticsPlugin>(host);
}

}  // namespace
}  // namespace analytics

WEP_EFFECT_PLUGIN("analytics", WEP_VERSION_STRING, ::analytics::make_analytics_plugin)
