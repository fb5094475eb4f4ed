// The flusher: the sending half of FlushAnalyticsQueueUseCase. The queue
// half (reading batches, deleting delivered rows, dead-lettering) runs on
// FlusherQueue's thread, so it overlaps the network (flusher_queue.hpp).
//
// The flusher thread, while the host is online and analytics is enabled,
// takes the oldest rows (batch_size rows, batch_max_bytes), hands them to the
// transport plugin and applies the verdict as verdict_policy.hpp decides:
// delivered rows are deleted; refused rows are isolated by splitting and
// dead-lettered only when other rows of the batch were accepted, otherwise the
// failure is systemic (rows kept, backoff at the maximum, error in stats);
// transient failures back off with full jitter (a server's Retry-After within
// the backoff bounds) and split after kSplitAfterTransientFailures in a row.
// After a short batch (the queue is drained) the next send waits
// flush_interval_ms, so a steady trickle of events travels in batches; when
// the queue was found empty, the next rows_stored() sends at once.
//
// Idle: the thread waits on a timer only for a send that is due (the look
// after flush_interval_ms that follows a short batch, or a backoff delay).
// Once a pass finds the queue empty it sleeps, with no timeout, until
// rows_stored(), a connectivity or setting change, or stop(); offline or
// disabled it sleeps until it becomes active or stops. So an idle flusher
// (and its FlusherQueue thread, which only wakes for the flusher's jobs)
// never wakes periodically.
//
// Exactly once at the server: every row carries its stable event id
// (event_id_for), so a crash between a delivered send and the delete re-sends
// rows the server already has, and the server ignores them.
//
// Locking: `mutex` guards the control state (online, enabled, stopping,
// signals) and the transport pointer as seen by cancel(). The flusher thread
// alone uses the FlusherQueue and calls send(); it never holds `mutex` while
// doing I/O.
#include "flusher.hpp"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>

#include "backoff.hpp"
#include "flusher_queue.hpp"
#include "queue_store.hpp"
#include "verdict_policy.hpp"

namespace wep::analytics {
namespace {

using Clock = std::chrono::steady_clock;

// stop(): how often a cancel is repeated while a send is still in flight.
constexpr auto kCancelRepeat = std::chrono::milliseconds(20);

const char* verdict_name(int32_t kind) {
  switch (kind) {
    case WEP_VERDICT_DELIVERED:
      return "delivered";
    case WEP_VERDICT_RETRY_LATER:
      return "retry later";
    case WEP_VERDICT_REJECTED:
      return "rejected";
    case WEP_VERDICT_TOO_LARGE:
      return "too large";
    case WEP_VERDICT_FAILED:
      return "failed";
    case WEP_VERDICT_PER_ROW:
      return "settled row by row";
    default:
      return "unknown verdict";
  }
}

std::vector<IdRange> ranges_of(const std::vector<QueuedRow>& rows, const std::vector<size_t>& indices) {
  std::vector<IdRange> ranges;  // usually one: a batch is a run of consecutive ids
  for (size_t i : indices) append_id(ranges, rows[i].id);
  return ranges;
}

// " (next attempt in 250 ms)"
std::string next_attempt_in(Clock::duration delay) {
  return " (next attempt in " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(delay).count()) +
         " ms)";
}

// "transport: retry later (HTTP 503): <reason>"
std::string describe(int32_t kind, int32_t http_status, const std::string& reason) {
  std::string text = std::string("transport: ") + verdict_name(kind);
  if (http_status != 0) text += " (HTTP " + std::to_string(http_status) + ")";
  if (!reason.empty()) text += ": " + reason;
  return text;
}

// What one pass over a batch ended with; tells the thread when to look again.
enum class PassResult {
  kEmpty,        // nothing queued: wait for rows_stored() or flush_interval_ms
  kDrained,      // a short batch went out: next send after flush_interval_ms
  kMore,         // a full batch went out: read the next one at once
  kBackoff,      // a failure: wait for the delay in `delay`
  kInterrupted,  // offline, disabled or stopping while sending
};

}  // namespace

struct Flusher::Impl {
  Impl(const AnalyticsConfig& config_in, wep::Host host_in, Stats& stats_in)
      : config(config_in),
        host(host_in),
        stats(stats_in),
        backoff(config_in.backoff.initial_ms, config_in.backoff.max_ms, std::random_device{}()) {}

  // ---- fixed after construction
  const AnalyticsConfig config;
  const wep::Host host;
  Stats& stats;

  // ---- control state, guarded by `mutex`
  std::mutex mutex;
  std::condition_variable wake;         // the thread waits on it
  std::condition_variable thread_done;  // stop() waits on it
  bool online = false;
  bool enabled = true;
  bool stopping = false;
  bool rows_signal = false;     // rows_stored() since the thread last read
  uint64_t activations = 0;     // +1 whenever the flusher becomes active
  bool sending = false;         // a send() is in flight
  bool thread_running = false;  // set by start(), cleared by the thread on exit
  bool started = false;
  bool waiting_for_rows = false;                         // asleep until rows_stored() (the queue was found empty)
  bool queue_hold = false;                               // close_queue(): keep the queue connection closed
  bool queue_released = false;                           // the thread has closed it and waits for reopen_queue()
  std::condition_variable queue_released_changed;        // close_queue() waits on it
  wep::TransportHandle* transport_for_cancel = nullptr;  // valid while non-null

  // ---- transport, created by start(), destroyed by stop() after the join
  std::unique_ptr<wep::HostApiTable> transport_api;  // outlives the instance
  std::unique_ptr<wep::TransportHandle> transport;
  std::thread thread;

  // ---- owned by the flusher thread
  std::unique_ptr<FlusherQueue> queue;  // its own store connection and thread
  Backoff backoff;
  uint32_t transient_streak = 0;  // RETRY_LATER verdicts in a row (verdict_policy.hpp)
  Clock::duration delay{};        // with PassResult::kBackoff
  struct SendBuffers {
    std::vector<wep_row> wire;
    std::vector<uint8_t> rejected;
    std::string reason;
  } send_buffers;  // send_rows()'s, kept between batches

  bool active_locked() const { return online && enabled && !stopping && !queue_hold; }
  bool interrupted() {
    std::lock_guard lock(mutex);
    return !active_locked();
  }

  void log(int32_t level, const std::string& message) const { host.log(level, "flusher: " + message); }
  void report(const std::string& message) {
    stats.set_last_error(message);
    log(WEP_LOG_WARN, message);
  }

  void load_transport();
  void run() noexcept;
  PassResult pass();
  PassResult send_rows(std::vector<QueuedRow>& rows);
  struct SentPart {
    bool interrupted = false;  // offline, disabled or stopping: the verdict does not count
    int32_t kind = WEP_VERDICT_FAILED;
    int64_t retry_after_ms = -1;
    size_t flagged = 0;         // rows flagged in `rejected` (REJECTED)
    size_t rows_delivered = 0;  // rows settled as delivered (PER_ROW)
  };
  SentPart send_part(const std::vector<QueuedRow>& rows, const std::vector<size_t>& indices, std::string& what);
  void open_queue();
};

// ------------------------------------------------------------- the transport

void Flusher::Impl::load_transport() {
  const TransportConfig& tc = config.transport;
  std::string error;
  auto library = wep::PluginLibrary::open(tc.plugin_path, error);
  if (!library) throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "analytics config: /transport/plugin: " + error);
  if (!library->descriptor().transport) {
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "analytics config: /transport/plugin: '" + tc.plugin_path +
                                                   "' is not a transport plugin (it is an effect plugin)");
  }
  const std::string transport_name = library->name();

  std::filesystem::path dir = std::filesystem::path(std::string(host.data_dir())) / "transport";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw wep::Error(WEP_ERR_FAILED,
                     "cannot create the transport's data directory '" + dir.string() + "': " + ec.message());
  }
  // The transport's host: config, data dir and log only (no settings,
  // identity or bus). Its lines go to our host's log, prefixed.
  wep::HostServices services;
  services.log = [host = host](int32_t level, std::string_view name, std::string_view message) {
    host.log(level, "transport " + std::string(name) + ": " + std::string(message));
  };
  transport_api = std::make_unique<wep::HostApiTable>(transport_name, tc.config_json.empty() ? "{}" : tc.config_json,
                                                      dir.string(), std::move(services));

  auto handle = std::make_unique<wep::TransportHandle>(library);
  if (!handle->create(transport_api->get(), error)) {
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "analytics config: /transport/config: " + error);
  }
  if (!handle->start(error)) {
    handle->stop(tc.stop_timeout_ms);  // the contract: stop and destroy even when start failed
    handle.reset();
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "analytics config: /transport/config: " + error);
  }
  if (const std::optional<int64_t> window_ms = handle->resend_window_ms();
      window_ms && *window_ms < static_cast<int64_t>(config.backoff.max_ms)) {
    report("transport " + transport_name + ": rows may be sent again for only " + std::to_string(*window_ms) +
           " ms and still be stored once (the server's duplicate window less the transport's timeout), "
           "shorter than backoff.max_ms (" +
           std::to_string(config.backoff.max_ms) +
           " ms): a row retried after the window is stored twice; lengthen the server's duplicate window");
  }
  transport = std::move(handle);
}

// ------------------------------------------------------------------- thread

void Flusher::Impl::open_queue() {
  if (queue) return;
  std::filesystem::path path(config.database_path.empty() ? std::string("analytics.db") : config.database_path);
  if (path.is_relative()) path = std::filesystem::path(std::string(host.data_dir())) / path;
  StoreOptions options;
  options.busy_timeout_ms = config.busy_timeout_ms;
  options.max_database_bytes = config.max_database_bytes;
  queue = std::make_unique<FlusherQueue>(path.string(), options, stats, std::max<uint32_t>(config.batch_size, 1),
                                         config.batch_max_bytes);
}

void Flusher::Impl::run() noexcept {
  using State = Stats::FlusherState;
  const auto show = [this](State state) { stats.flusher_state.store(state, std::memory_order_relaxed); };
  std::unique_lock lock(mutex);
  uint64_t seen_activations = activations;
  Clock::time_point not_before = Clock::now();
  bool queue_was_empty = false;
  while (!stopping) {
    if (queue_hold) {
      if (queue) {
        lock.unlock();
        queue.reset();  // applies the deletes still queued, closes the connection
        lock.lock();
        continue;
      }
      queue_released = true;
      queue_released_changed.notify_all();
      wake.wait(lock, [&] { return stopping || !queue_hold; });
      queue_released = false;
      continue;
    }
    if (!active_locked()) {
      wake.wait(lock, [&] {
        const bool go = stopping || queue_hold || (online && enabled);
        if (!go) show(State::kPaused);
        return go;
      });
      continue;
    }
    if (seen_activations != activations) {  // came (back) online or re-enabled: try at once
      seen_activations = activations;
      not_before = Clock::now();
      queue_was_empty = false;
      backoff.reset();
      transient_streak = 0;
    }
    if (queue_was_empty && !rows_signal) {
      // Nothing queued and nothing stored since: no timer, only a signal ends this wait.
      waiting_for_rows = true;
      wake.wait(lock, [&] {
        const bool go = !active_locked() || seen_activations != activations || rows_signal;
        if (!go) show(State::kIdle);
        return go;
      });
      waiting_for_rows = false;
      continue;
    }
    if (queue_was_empty && rows_signal) not_before = Clock::now();
    if (Clock::now() < not_before) {
      wake.wait_until(lock, not_before, [&] {
        const bool go = !active_locked() || seen_activations != activations || (queue_was_empty && rows_signal);
        if (!go) show(State::kWaiting);
        return go;
      });
      continue;
    }

    show(State::kSending);
    rows_signal = false;
    lock.unlock();
    PassResult result;
    try {
      result = pass();
    } catch (const std::exception& e) {
      // The store or the transport failed in a way the verdicts do not
      // cover: reopen the store next time and back off.
      queue.reset();
      report(std::string("delivery pass failed: ") + e.what());
      delay = backoff.next_delay();
      result = PassResult::kBackoff;
    } catch (...) {
      queue.reset();
      report("delivery pass failed: unknown exception");
      delay = backoff.next_delay();
      result = PassResult::kBackoff;
    }
    // Only a fully settled batch lets the next read continue after it;
    // otherwise the next pass starts again at the oldest row.
    if (queue && result != PassResult::kMore) queue->restart();
    lock.lock();

    const Clock::time_point now = Clock::now();
    const auto interval = std::chrono::milliseconds(config.flush_interval_ms);
    queue_was_empty = result == PassResult::kEmpty;
    switch (result) {
      case PassResult::kEmpty:
      case PassResult::kDrained:
        not_before = now + interval;
        break;
      case PassResult::kMore:
      case PassResult::kInterrupted:
        not_before = now;
        break;
      case PassResult::kBackoff:
        not_before = now + delay;
        break;
    }
  }
  lock.unlock();
  queue.reset();  // applies the deletes still queued, ends its thread
  lock.lock();
  show(State::kStopped);
  thread_running = false;
  thread_done.notify_all();
  queue_released_changed.notify_all();
}

// One read of the oldest rows and everything it takes to settle them.
PassResult Flusher::Impl::pass() {
  open_queue();
  std::vector<QueuedRow> rows = queue->next_batch();
  if (rows.empty()) return PassResult::kEmpty;
  const bool full_batch = rows.size() >= config.batch_size ||
                          std::accumulate(rows.begin(), rows.end(), size_t{0}, [](size_t sum, const QueuedRow& r) {
                            return sum + queued_row_bytes(r);
                          }) >= config.batch_max_bytes / 2;  // a short batch this heavy was cut by the byte cap
  PassResult result = send_rows(rows);
  queue->recycle(std::move(rows));
  if (result == PassResult::kDrained && full_batch) return PassResult::kMore;
  return result;
}

// Sends `rows` (split as verdict_policy.hpp decides) until every row is
// delivered or dead-lettered (kDrained), or a failure stops the pass
// (kBackoff), or the flusher went inactive (kInterrupted). Rows not settled
// stay queued.
PassResult Flusher::Impl::send_rows(std::vector<QueuedRow>& rows) {
  for (QueuedRow& row : rows) {  // rows from the queue come with both
    if (row.event_id.empty()) row.event_id = event_id_for(row.user_id.value_or(""), row.id, row.created_at);
    if (row.created_at_utc.empty()) iso8601_utc(row.created_at, row.created_at_utc);
  }
  // Parts to send, processed last-in first-out; halves are pushed
  // second-half first so rows keep going out oldest first.
  std::vector<std::vector<size_t>> work;
  work.emplace_back(rows.size());
  std::iota(work.back().begin(), work.back().end(), size_t{0});
  // Parts refused while nothing was accepted yet, each with its reason.
  std::vector<std::pair<std::vector<size_t>, std::string>> held;
  PassState pass_state;
  bool whole_batch = true;

  auto split = [&](std::vector<size_t>&& indices) {
    const size_t half = indices.size() / 2;
    std::vector<size_t> second(indices.begin() + static_cast<std::ptrdiff_t>(half), indices.end());
    indices.resize(half);
    work.push_back(std::move(second));
    work.push_back(std::move(indices));
    stats.splits.fetch_add(1, std::memory_order_relaxed);
  };
  auto dead_letter = [&](const std::vector<size_t>& indices, const std::string& why) {
    std::vector<int64_t> ids;
    ids.reserve(indices.size());
    for (size_t i : indices) ids.push_back(rows[i].id);
    queue->dead_letter(std::move(ids), why);  // counts dead_lettered
    log(WEP_LOG_WARN, "dead-lettered " + std::to_string(indices.size()) + " row(s): " + why);
  };

  for (;;) {
    if (work.empty()) {
      switch (end_of_parts(pass_state, held.size())) {
        case PassEnd::kDone:
          return PassResult::kDrained;
        case PassEnd::kResolveHeld:
          for (auto& [part, why] : held) {
            if (part.size() == 1) {
              dead_letter(part, why);
            } else {
              split(std::move(part));
            }
          }
          held.clear();
          if (work.empty()) return PassResult::kDrained;
          continue;
        case PassEnd::kSystemic:
          stats.systemic_failures.fetch_add(1, std::memory_order_relaxed);
          delay = backoff.max_delay();
          report("systemic failure, every row kept (no row of the batch was accepted): " + held.back().second +
                 next_attempt_in(delay));
          return PassResult::kBackoff;
      }
    }
    if (interrupted()) return PassResult::kInterrupted;
    std::vector<size_t> indices = std::move(work.back());
    work.pop_back();

    std::string what;
    const SentPart sent = send_part(rows, indices, what);
    if (sent.interrupted) return PassResult::kInterrupted;
    PartVerdict part_verdict;
    part_verdict.kind = sent.kind;
    part_verdict.rows = indices.size();
    part_verdict.flagged = sent.flagged;
    part_verdict.rows_delivered = sent.rows_delivered;
    part_verdict.whole_batch = whole_batch;
    whole_batch = false;
    const PartStep step = next_step(part_verdict, pass_state, transient_streak);
    if (sent.kind == WEP_VERDICT_RETRY_LATER || sent.kind == WEP_VERDICT_FAILED)
      stats.retries.fetch_add(1, std::memory_order_relaxed);
    if (sent.kind == WEP_VERDICT_RETRY_LATER && pass_state.escalated)
      what += " (escalated after repeated transient failures: split like a 413)";

    switch (step) {
      case PartStep::kDelivered:
        queue->mark_delivered(ranges_of(rows, indices));  // counts delivered
        backoff.reset();
        break;
      case PartStep::kSplit:
        split(std::move(indices));
        break;
      case PartStep::kHoldFlagged: {
        std::vector<size_t> others;
        for (size_t k = 0; k < indices.size(); ++k) {
          if (send_buffers.rejected[k]) {
            held.emplace_back(std::vector<size_t>{indices[k]}, what);
          } else {
            others.push_back(indices[k]);
          }
        }
        work.push_back(std::move(others));  // re-send the rows the transport did not refuse
        break;
      }
      case PartStep::kHold:
        held.emplace_back(std::move(indices), what);
        break;
      case PartStep::kSettleRows: {
        std::vector<size_t> delivered, refused, resend;
        for (size_t k = 0; k < indices.size(); ++k) {
          const uint8_t outcome = send_buffers.rejected[k];
          (outcome == WEP_ROW_DELIVERED  ? delivered
           : outcome == WEP_ROW_REJECTED ? refused
                                         : resend)
              .push_back(indices[k]);
        }
        if (!delivered.empty()) {
          queue->mark_delivered(ranges_of(rows, delivered));  // counts delivered
          backoff.reset();
        }
        if (pass_state.accepted) {
          if (!refused.empty()) dead_letter(refused, what);  // refused beside accepted rows
        } else {
          for (size_t i : refused) held.emplace_back(std::vector<size_t>{i}, what);
        }
        if (resend.empty()) break;
        if (interrupted()) return PassResult::kInterrupted;  // the unsettled rows are the cancel's
        stats.retries.fetch_add(1, std::memory_order_relaxed);
        delay = backoff.next_delay(sent.retry_after_ms);
        report(what + next_attempt_in(delay));
        return PassResult::kBackoff;
      }
      case PartStep::kDeadLetter:
        dead_letter(indices, what);
        break;
      case PartStep::kBackoff:
        delay = backoff.next_delay(sent.retry_after_ms);
        report(what + next_attempt_in(delay));
        return PassResult::kBackoff;
      case PartStep::kBackoffAtMax:
        delay = backoff.max_delay();
        report(what + next_attempt_in(delay));
        return PassResult::kBackoff;
    }
  }
}

// One send() of rows[indices]: fills the wire rows, calls the transport,
// describes the verdict into `what`. The flags land in send_buffers.rejected.
Flusher::Impl::SentPart Flusher::Impl::send_part(const std::vector<QueuedRow>& rows, const std::vector<size_t>& indices,
                                                 std::string& what) {
  // The per-request buffers are the thread's (see Impl): reused, so a batch
  // frees no large block (which made malloc consolidate on every batch).
  std::vector<wep_row>& wire = send_buffers.wire;
  std::vector<uint8_t>& rejected = send_buffers.rejected;
  std::string& reason = send_buffers.reason;
  wire.clear();
  wire.reserve(indices.size());
  for (size_t i : indices) {
    const QueuedRow& row = rows[i];
    wep_row w{};
    w.queue_id = row.id;
    w.event_id = wep::str(row.event_id);
    w.event_type = wep::str(row.event_type);
    w.properties_json = row.properties_json ? wep::str(*row.properties_json) : wep_str{nullptr, 0};
    w.user_id = row.user_id ? wep::str(*row.user_id) : wep_str{nullptr, 0};
    w.created_at = wep::str(row.created_at_utc);
    wire.push_back(w);
  }
  rejected.assign(indices.size(), 0);
  reason.clear();
  wep_verdict verdict{};
  verdict.struct_size = sizeof(wep_verdict);
  verdict.kind = WEP_VERDICT_FAILED;
  verdict.retry_after_ms = -1;
  verdict.http_status = 0;
  verdict.rejected = rejected.data();
  verdict.reason = wep::string_sink(reason);
  verdict.per_row_ok = 1;
  const wep_batch batch{wire.data(), wire.size()};

  SentPart sent;
  {
    std::lock_guard lock(mutex);
    if (!active_locked()) {
      sent.interrupted = true;
      return sent;
    }
    sending = true;
  }
  stats.requests.fetch_add(1, std::memory_order_relaxed);
  stats.requests_in_flight.fetch_add(1, std::memory_order_relaxed);
  transport->send(batch, verdict);
  stats.requests_in_flight.fetch_sub(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex);
    sending = false;
    if (stopping) thread_done.notify_all();  // stop() stops repeating its cancel
  }
  // A transient verdict while going offline or stopping is the cancel's.
  if (verdict.kind == WEP_VERDICT_RETRY_LATER && interrupted()) {
    sent.interrupted = true;
    return sent;
  }
  sent.kind = verdict.kind;
  sent.retry_after_ms = verdict.retry_after_ms;
  if (verdict.kind == WEP_VERDICT_PER_ROW) {
    for (uint8_t outcome : rejected) sent.rows_delivered += outcome == WEP_ROW_DELIVERED ? 1 : 0;
  } else {
    for (uint8_t flag : rejected) sent.flagged += flag ? 1 : 0;
  }
  what = describe(verdict.kind, verdict.http_status, reason);
  return sent;
}

// ------------------------------------------------------------------ Flusher

Flusher::Flusher(const AnalyticsConfig& config, wep::Host host, Stats& stats)
    : impl_(std::make_unique<Impl>(config, host, stats)) {}

Flusher::~Flusher() {
  try {
    stop(impl_->config.transport.stop_timeout_ms);
  } catch (...) {
    // stop() reports through the log; a destructor must not throw
  }
}

void Flusher::start() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    if (impl.started) return;
  }
  impl.load_transport();  // throws wep::Error on a bad transport config
  std::lock_guard lock(impl.mutex);
  impl.started = true;
  impl.stopping = false;
  impl.transport_for_cancel = impl.transport.get();
  impl.thread_running = true;
  impl.stats.flusher_state.store(Stats::FlusherState::kSettling);
  try {
    impl.thread = std::thread([&impl] {
      pthread_setname_np(pthread_self(), "wep-flusher");  // for ps / top / perf
      impl.run();
    });
  } catch (...) {
    impl.thread_running = false;
    impl.transport_for_cancel = nullptr;
    throw;
  }
}

void Flusher::set_online(bool online) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->thread_running) impl_->stats.flusher_state.store(Stats::FlusherState::kSettling);
  if (online && !impl_->online) ++impl_->activations;
  impl_->online = online;
  if (!online && impl_->sending && impl_->transport_for_cancel) impl_->transport_for_cancel->cancel();
  impl_->wake.notify_all();
}

void Flusher::set_enabled(bool enabled) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->thread_running) impl_->stats.flusher_state.store(Stats::FlusherState::kSettling);
  if (enabled && !impl_->enabled) ++impl_->activations;
  impl_->enabled = enabled;
  if (!enabled && impl_->sending && impl_->transport_for_cancel) impl_->transport_for_cancel->cancel();
  impl_->wake.notify_all();
}

void Flusher::close_queue() {
  std::unique_lock lock(impl_->mutex);
  if (!impl_->thread_running) return;
  impl_->queue_hold = true;
  if (impl_->sending && impl_->transport_for_cancel) impl_->transport_for_cancel->cancel();
  impl_->wake.notify_all();
  impl_->queue_released_changed.wait(lock, [&] { return impl_->queue_released || !impl_->thread_running; });
}

void Flusher::reopen_queue() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->queue_hold) return;
  impl_->queue_hold = false;
  ++impl_->activations;  // try at once
  impl_->wake.notify_all();
}

void Flusher::rows_stored() {
  std::lock_guard lock(impl_->mutex);
  impl_->rows_signal = true;
  // Only a thread asleep on an empty queue acts on the signal at once; any
  // other state reads it at its next pass, so it is not woken for it.
  if (impl_->waiting_for_rows) impl_->wake.notify_all();
}

bool Flusher::stop(uint32_t timeout_ms) {
  Impl& impl = *impl_;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  bool in_time = true;
  {
    std::unique_lock lock(impl.mutex);
    if (!impl.started) return true;
    impl.stopping = true;
    impl.wake.notify_all();
    // No new request starts. The one in flight may finish during the first
    // half of timeout_ms, so rows the server has taken are confirmed and
    // deleted here rather than sent again by whoever sends next (a reloaded
    // plugin may send through another transport). Then it is cancelled: a
    // cancel() that lands just before the transport starts its request is a
    // no-op, so it is repeated while a send is in flight. The send itself is
    // bounded by the transport's timeout, so this loop always ends. Until
    // then this waits on the thread's end, not on a timer: the only timed
    // re-check is that repeated cancel.
    const Clock::time_point grace_end = Clock::now() + std::chrono::milliseconds(timeout_ms / 2);
    impl.thread_done.wait_until(lock, grace_end, [&] { return !impl.thread_running; });
    while (impl.thread_running) {
      if (impl.sending && impl.transport_for_cancel) {
        impl.transport_for_cancel->cancel();
        impl.thread_done.wait_for(lock, kCancelRepeat, [&] { return !impl.thread_running || !impl.sending; });
      } else {
        // Not sending: stopping is set, so no send starts; the thread ends
        // after its current queue step (bounded by the busy timeout).
        impl.thread_done.wait(lock, [&] { return !impl.thread_running; });
      }
    }
    if (Clock::now() >= deadline) in_time = false;
    impl.transport_for_cancel = nullptr;
  }
  if (impl.thread.joinable()) impl.thread.join();

  if (impl.transport) {
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const uint32_t transport_timeout_ms =
        static_cast<uint32_t>(std::clamp<int64_t>(left_ms, 0, impl.config.transport.stop_timeout_ms));
    if (impl.transport->stop(transport_timeout_ms) != WEP_OK) in_time = false;
    impl.transport.reset();  // destroys the instance, then releases the library
  }
  std::lock_guard lock(impl.mutex);
  impl.started = false;
  return in_time;
}

}  // namespace wep::analytics
