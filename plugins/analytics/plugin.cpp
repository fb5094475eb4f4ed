// The analytics effect plugin's entry point: the descriptor, and the glue
// from the host's vtable calls to the use cases, the writer (writer.hpp) and
// the flusher (flusher.hpp).
//
// Threads:
//   lane    (the host's)  on_event: EnqueueAnalyticsEventUseCase maps the
//                          event (its own EventMapper) and hands the result
//                          to the HandOffBuffer; settings and connectivity
//                          are applied in bus order.
//   writer  (ours)         stores rows and the event-log checkpoint, ages out,
//                          recovers from a damaged database (writer.hpp);
//                          during the start-up catch-up a reader thread of
//                          its own reads and maps the host's log.
//   flusher (ours, if a transport is configured) sends rows (flusher.cpp).
//   any host thread        pending_count (barrier behind the writer, then an
//                          O(1) count), stats_json.
//
// Idle, no thread polls: the writer sleeps until an event arrives, stop, or
// the maintenance timer (maintenance_interval_ms) is due; the flusher and its
// queue thread sleep until rows are stored, connectivity or analytics_enabled
// change, or stop (flusher.cpp).
//
// A store problem (disk full, read-only or damaged file) never reaches the
// host as a failure: rows that cannot be stored are dropped and counted,
// the error is logged (once per distinct message) and shown as last_error.
#include <wep/version.h>

#include <atomic>
#include <boost/dll/runtime_symbol_info.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <wep/plugin.hpp>

#include "config.hpp"
#include "event_mapper.hpp"
#include "flusher.hpp"
#include "hand_off_buffer.hpp"
#include "queue_store.hpp"
#include "stats.hpp"
#include "stats_json.hpp"
#include "use_cases.hpp"
#include "writer.hpp"

namespace wep::analytics {
namespace {

// The hand-off buffer's byte bound (besides buffer_capacity events): caps the
// memory that mutation payloads waiting for the writer can take.
constexpr size_t kBufferMaxBytes = size_t{64} << 20;

// The folder of this plugin file: a relative transport.plugin is resolved
// against it (plugin files are installed side by side).
std::string plugin_folder() {
  try {
    return boost::dll::this_line_location().parent_path().string();
  } catch (...) {
    return {};
  }
}

class AnalyticsPlugin final : public wep::EffectPlugin {
 public:
  explicit AnalyticsPlugin(wep::Host host) : host_(host) {}
  ~AnalyticsPlugin() override { shut_down(0, /*log_summary=*/false); }

  void start() override;
  void on_event(const wep_event& event) override;
  std::optional<int64_t> pending_count() override;
  std::string stats_json() override;
  std::string control(std::string_view command, std::string_view argument_json) override;
  bool stop(uint32_t timeout_ms) override { return shut_down(timeout_ms, /*log_summary=*/true); }

 private:
  bool shut_down(uint32_t timeout_ms, bool log_summary);
  void report_store_error(const std::string& message);
  bool read_enabled_setting();
  void apply_enabled(bool enabled);
  template <class F>
  void with_flusher(F&& f) {
    std::lock_guard lock(flusher_mutex_);
    if (flusher_) f(*flusher_);
  }

  wep::Host host_;
  AnalyticsConfig config_;
  StoreOptions store_options_;
  Stats stats_;
  bool log_backed_ = false;

  // Set up in start() before the writer thread and the subscription exist;
  // read-only afterwards.
  std::unique_ptr<HandOffBuffer> buffer_;
  std::unique_ptr<EventMapper> lane_mapper_;  // on_event's (the host's lane)
  std::unique_ptr<EnqueueAnalyticsEventUseCase> enqueue_;
  WriterProgress progress_;
  std::unique_ptr<SharedQueueStore> reader_;
  std::unique_ptr<PendingAnalyticsCountUseCase> pending_;
  std::unique_ptr<EventMapper> mapper_;  // the writer's (and its catch-up reader's)
  std::unique_ptr<Writer> writer_;

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
  lane_mapper_ = std::make_unique<EventMapper>(config_, user_id, stats_);
  mapper_ = std::make_unique<EventMapper>(config_, std::move(user_id), stats_);
  buffer_ = std::make_unique<HandOffBuffer>(config_.buffer_capacity, kBufferMaxBytes);
  enqueue_ = std::make_unique<EnqueueAnalyticsEventUseCase>(*buffer_, stats_, lane_mapper_.get());
  reader_ = std::make_unique<SharedQueueStore>(config_.database_path, store_options_);
  pending_ = std::make_unique<PendingAnalyticsCountUseCase>(*buffer_, progress_, *reader_);

  log_backed_ = host_.last_mutation_sequence().has_value();
  stats_.catch_up_on.store(log_backed_);
  enqueue_->set_log_backed(log_backed_);
  if (!log_backed_) {
    host_.log(WEP_LOG_WARN,
              "crash catch-up is off: the host keeps no event log, so events not yet stored when the process "
              "dies are lost");
  }

  Writer::Hooks hooks;
  hooks.rows_stored = [this] { with_flusher([](Flusher& f) { f.rows_stored(); }); };
  hooks.close_connections = [this] {
    reader_->hold();
    with_flusher([](Flusher& f) { f.close_queue(); });
  };
  hooks.reopen_connections = [this] {
    reader_->release();
    with_flusher([](Flusher& f) { f.reopen_queue(); });
  };
  hooks.report_error = [this](const std::string& message) { report_store_error(message); };
  writer_ =
      std::make_unique<Writer>(config_, store_options_, host_, stats_, *buffer_, progress_, *mapper_, std::move(hooks));
  // The database: open (a damaged file is moved aside), repair the counter,
  // age out. Failures are reported, not fatal: the host must carry on.
  writer_->open();

  apply_enabled(read_enabled_setting());
  if (!config_.transport.plugin_path.empty()) {
    auto flusher = std::make_unique<Flusher>(config_, host_, stats_);
    flusher->start();  // a bad transport config is refused here
    flusher->set_enabled(enqueue_->enabled());
    std::lock_guard lock(flusher_mutex_);
    flusher_ = std::move(flusher);
  }

  writer_->start(log_backed_);

  if (host_.subscribe(WEP_EVENT_MUTATION_COMMITTED | WEP_EVENT_CONNECTIVITY_CHANGED | WEP_EVENT_SETTING_CHANGED) !=
      WEP_OK) {
    throw wep::Error(WEP_ERR_FAILED, "analytics: the host refused the bus subscription");
  }
  {
    // A change published between the first read and the subscription is
    // only visible here; one published after it arrives on the bus. The
    // writer places it among the mutations from the log, as it does a bus
    // change (its catch-up may have read the log before the change).
    std::lock_guard lock(setting_mutex_);
    if (!setting_seen_on_bus_) {
      const bool enabled = read_enabled_setting();
      apply_enabled(enabled);
      if (log_backed_ && writer_->enabled_at_start() != enabled) {
        buffer_->push_enabled_changed(enabled ? "true" : "false");
      }
    }
  }

  std::string summary = "started: queue " + config_.database_path + ", " + std::to_string(config_.events.size()) +
                        " mapped mutation types, " +
                        (config_.transport.plugin_path.empty() ? std::string("no transport (rows are only queued)")
                                                               : "transport " + config_.transport.plugin_path) +
                        (log_backed_ ? ", crash catch-up from the host's event log" : ", crash catch-up off") +
                        (enqueue_->enabled() ? "" : ", analytics disabled");
  host_.log(WEP_LOG_INFO, summary);
}

void AnalyticsPlugin::on_event(const wep_event& event) {
  if (!enqueue_) return;
  switch (event.kind) {
    case WEP_EVENT_MUTATION_COMMITTED:
      enqueue_->execute(wep::view(event.mutation.type), wep::view(event.mutation.payload_json),
                        event.mutation.committed_at_ms, event.mutation.sequence);
      break;
    case WEP_EVENT_SETTING_CHANGED:
      if (wep::view(event.setting.key) == kEnabledKey) {
        const std::optional<bool> value = parse_enabled_setting(wep::view(event.setting.value_json));
        if (!value) host_.log(WEP_LOG_WARN, "analytics_enabled is not true or false; treating it as false");
        const bool enabled = value.value_or(false);
        std::lock_guard lock(setting_mutex_);
        setting_seen_on_bus_ = true;
        if (enabled != enqueue_->enabled()) {
          host_.log(WEP_LOG_INFO, enabled ? "analytics enabled" : "analytics disabled: nothing is recorded or sent");
        }
        apply_enabled(enabled);
        // The writer places the change among the mutations (writer.hpp).
        if (log_backed_) buffer_->push_enabled_changed(enabled ? "true" : "false");
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

// Commands (plugin API 1.2), each without an argument:
//   requeue_dead_letters -> {"requeued":N}  every dead-lettered row back in
//                           the queue (old id, same event id), sent again
//   dead_letters         -> {"dead_letter_rows":N}
std::string AnalyticsPlugin::control(std::string_view command, std::string_view) {
  if (!reader_) throw wep::Error(WEP_ERR_FAILED, "analytics: not started");
  if (command == "requeue_dead_letters") {
    const int64_t requeued = reader_->with([](QueueStore& store) { return store.requeue_dead_letters(); });
    stats_.requeued.fetch_add(requeued, std::memory_order_relaxed);
    if (requeued > 0) {
      host_.log(WEP_LOG_INFO, "requeued " + std::to_string(requeued) + " dead-lettered row(s)");
      with_flusher([](Flusher& f) { f.rows_stored(); });
    }
    return "{\"requeued\":" + std::to_string(requeued) + "}";
  }
  if (command == "dead_letters") {
    const int64_t rows = reader_->with([](QueueStore& store) { return store.dead_letter_count(); });
    return "{\"dead_letter_rows\":" + std::to_string(rows) + "}";
  }
  throw wep::Error(WEP_ERR_UNSUPPORTED, "analytics: unknown command '" + std::string(command) + "'");
}

bool AnalyticsPlugin::read_enabled_setting() {
  const std::optional<std::string> value = host_.setting_json(kEnabledKey);
  if (!value) return true;  // the spec's default
  if (const std::optional<bool> enabled = parse_enabled_setting(*value)) return *enabled;
  host_.log(WEP_LOG_WARN, "analytics_enabled is not true or false; treating it as false");
  return false;  // privacy first when the value is unclear
}

void AnalyticsPlugin::apply_enabled(bool enabled) {
  enqueue_->set_enabled(enabled);
  with_flusher([enabled](Flusher& f) { f.set_enabled(enabled); });
}

void AnalyticsPlugin::report_store_error(const std::string& message) {
  stats_.set_last_error(message);
  std::lock_guard lock(error_mutex_);
  if (message == last_logged_error_) return;  // once per distinct message
  last_logged_error_ = message;
  host_.log(WEP_LOG_ERROR, message);
}

std::string AnalyticsPlugin::stats_json() {
  StatsView view;
  if (reader_) {
    try {
      reader_->with([&](QueueStore& store) {
        view.pending = store.count();
        view.dead_letter_rows = store.dead_letter_count();
        return 0;
      });
    } catch (const StoreError&) {
      // shown as null; last_error tells why
    }
  }
  view.enabled = enqueue_ ? enqueue_->enabled() : false;
  view.online = online_.load();
  view.database = config_.database_path;
  return wep::analytics::stats_json(stats_, view);
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
  if (writer_) {
    writer_->request_stop();
    writer_->join();
  }
  progress_.close();
  bool completed = true;
  {
    std::lock_guard lock(flusher_mutex_);
    if (flusher_) {
      completed = flusher_->stop(timeout_ms);
      flusher_.reset();
    }
  }
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
}  // namespace wep::analytics

WEP_EFFECT_PLUGIN("analytics", WEP_VERSION_STRING, ::wep::analytics::make_analytics_plugin)
