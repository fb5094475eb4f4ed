// Flusher: the plugin's delivery thread. It owns a transport plugin instance
// (loaded with wep::PluginLibrary from config.transport) and its own
// QueueStore connection, and runs FlushAnalyticsQueueUseCase while the host
// is online and analytics is enabled.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <wep/plugin.hpp>

#include "config.hpp"
#include "stats.hpp"

namespace wep::analytics {

class Flusher {
 public:
  // Does not start a thread and does no I/O. `host`, `stats` must outlive it.
  Flusher(const AnalyticsConfig& config, wep::Host host, Stats& stats);
  ~Flusher();  // stops if still running

  // Loads and starts the transport, opens the store, starts the thread
  // (idle until online). Throws wep::Error on a bad transport config.
  void start();

  void set_online(bool online);    // offline: abandons in-flight work
  void set_enabled(bool enabled);  // false: sends nothing, keeps rows
  void rows_stored();              // the writer stored new rows

  // Closes the flusher's queue connection (an in-flight send is cancelled;
  // its rows stay queued) and keeps it closed, sending nothing, until
  // reopen_queue(). The transport stays loaded. Returns once closed.
  void close_queue();
  void reopen_queue();

  // Ends the thread within timeout_ms and stops the transport: no new
  // request starts; one in flight may complete during the first half of
  // timeout_ms (its rows are then settled), after that it is cancelled.
  // False if work had to be abandoned.
  bool stop(uint32_t timeout_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wep::analytics
