// WriteEffectCoordinator: the bus a host fires after each committed mutation.
//
// It runs a bounded set of side effects (an embedding queue, an event log
// projection, a sync queue, analytics, ...), each behind its own bounded
// lane: a queue plus one thread that calls the effect. Publishing only
// pushes into lanes, so an effect never slows down, fails or changes the
// mutation, and a slow or throwing effect never blocks the others. A full
// lane drops the event for that effect only and counts it.
//
// Ordering guarantee: every effect sees the events it subscribed to in one
// total order, the order of publication. publish_mutation() runs the host's
// commit under the publication lock, so publication order is commit order
// (sequence order) even when many threads commit at once.
//
// Built on Boost.Signals2: every slot on the signal is a host object (a
// thunk pushing into one lane), never plugin code, so removing an effect
// cannot leave plugin code inside the bus.
//
// Thread safety: every member may be called from any thread, except that
// the barriers (flush, flush_effect) must not be called from an effect's own
// handler (a lane cannot wait for itself).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <wep/host/error.hpp>
#include <wep/host/event.hpp>
#include <wep/host_services.hpp>

namespace wep {

// One effect's counters. Plain data: a snapshot.
struct EffectStats {
  std::string name;
  uint64_t delivered = 0;       // handler returned normally
  uint64_t failed = 0;          // handler threw
  uint64_t dropped = 0;         // the lane was full when the event came
  uint64_t queued = 0;          // accepted, not yet handled
  uint64_t max_handler_us = 0;  // slowest handler call so far
  std::string last_error;       // of the last failed call; empty if none
};

class WriteEffectCoordinator {
 public:
  struct Options {
    // Capacity of each effect's lane, in events (>= 1). Memory is taken as
    // events arrive, not up front.
    size_t lane_capacity = 65536;
    // Where the coordinator logs (an effect failing for the first time).
    // Null: stderr.
    LogFunction log;
  };

  // Called on the effect's lane thread, one event at a time, in bus order.
  // May throw: counted as "failed" for that effect only.
  using Handler = std::function<void(const Event&)>;

  // What publish_mutation's commit step reports.
  struct Commit {
    int64_t sequence = 0;  // > 0, strictly increasing
    int64_t committed_at_ms = 0;
  };

  explicit WriteEffectCoordinator(Options options);
  WriteEffectCoordinator();
  WriteEffectCoordinator(const WriteEffectCoordinator&) = delete;
  WriteEffectCoordinator& operator=(const WriteEffectCoordinator&) = delete;
  // Calls close().
  ~WriteEffectCoordinator();

  // ---- effects

  // Adds an effect with its own lane and thread, receiving the kinds in
  // `event_kinds` (a mask of kMutationCommitted, ...). Throws HostError for
  // an empty or taken name, or after close(). The handler is never called
  // after remove_effect() or close() returned.
  void add_effect(const std::string& name, Handler handler, uint32_t event_kinds = kAllEvents);
  // Disconnects the effect, lets it handle what its lane accepted, joins
  // its thread. False for an unknown name.
  bool remove_effect(std::string_view name);
  bool has_effect(std::string_view name) const;
  // Changes which kinds the effect's lane accepts from now on.
  bool set_event_kinds(std::string_view name, uint32_t event_kinds);

  // Holds delivery to one effect: returns once its handler is not running;
  // the lane keeps accepting (bounded; overflow is dropped and counted)
  // until resume_effect(). False for an unknown name.
  bool pause_effect(std::string_view name);
  bool resume_effect(std::string_view name);

  // Pushes the current connectivity (as last published; offline before
  // any) into one effect's lane, ordered with publications. For an effect
  // added while the host is already online.
  bool replay_connectivity(std::string_view name);

  // ---- publishing (each throws HostError after close())

  // The host's durable write of one mutation, given the event's own type
  // and payload (valid during the call).
  using CommitFunction = std::function<Commit(std::string_view type, std::string_view payload_json)>;

  // Runs `commit` under the publication lock, then publishes
  // mutation_committed for what it committed. If `commit` throws, nothing
  // is published and the exception propagates. Returns the sequence.
  // Effects never change the result.
  int64_t publish_mutation(std::string type, std::string payload_json, const CommitFunction& commit);
  // Publishes connectivity_changed (also when unchanged).
  void publish_connectivity(bool online, bool metered = false);
  // Runs `persist` (may be null) under the publication lock, then publishes
  // setting_changed, so settings and mutations keep one order.
  void publish_setting(std::string key, std::string value_json, const std::function<void()>& persist = {});
  bool online() const;

  // ---- barriers and stats

  // Returns once every effect (or the one named) has handled everything its
  // lane accepted before the call. flush_effect answers false at the
  // timeout or for an unknown name.
  void flush();
  bool flush_effect(std::string_view name);
  bool flush_effect(std::string_view name, std::chrono::milliseconds timeout);
  // In the order effects were added.
  std::vector<EffectStats> stats() const;
  std::optional<EffectStats> effect_stats(std::string_view name) const;

  // Idempotent: removes every effect (last added first). Later publishes
  // and add_effect() throw HostError.
  void close();
  bool closed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep
