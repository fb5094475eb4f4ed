// g++ 12 reports a false -Wmaybe-uninitialized inside Boost.Signals2's
// slot-group map (boost::optional<int> group key) when inlined with
// optimisation and sanitizers; the value is never read uninitialised. The
// pragma precedes every include so it covers those header locations.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <boost/signals2/signal.hpp>
#include <iostream>
#include <mutex>
#include <wep/host/write_effect_coordinator.hpp>

#include "effect_lane.hpp"

namespace wep {

// Locking: `publish_mutex` serialises publication (commit + emit), the
// signal's connect/disconnect and `closed`, so every lane sees one order and
// no slot call is in flight once a disconnect returns. `effects_mutex`
// guards the effect list; it is never held while waiting on a lane.
// Lock order: effects_mutex, then publish_mutex.
struct WriteEffectCoordinator::Impl {
  struct Effect {
    std::string name;
    std::shared_ptr<EffectLane> lane;
    boost::signals2::connection connection;
  };

  Options options;
  std::mutex publish_mutex;
  boost::signals2::signal<void(const EventPtr&)> signal;
  bool closed = false;
  bool online = false;
  bool metered = false;

  mutable std::mutex effects_mutex;
  std::vector<Effect> effects;

  void log(const std::string& message) const {
    if (options.log) {
      options.log(WEP_LOG_WARN, "host", message);
    } else {
      std::cerr << ("[host] warn: " + message + "\n") << std::flush;
    }
  }

  std::shared_ptr<EffectLane> find(std::string_view name) const {
    std::lock_guard lock(effects_mutex);
    for (const auto& effect : effects)
      if (effect.name == name) return effect.lane;
    return nullptr;
  }

  EventPtr connectivity_event() const {
    auto event = std::make_shared<Event>();
    event->kind = kConnectivityChanged;
    event->online = online;
    event->metered = metered;
    return event;
  }
};

WriteEffectCoordinator::WriteEffectCoordinator(Options options) : impl_(std::make_unique<Impl>()) {
  if (options.lane_capacity == 0) throw HostError("lane_capacity: must be >= 1");
  impl_->options = std::move(options);
}

WriteEffectCoordinator::WriteEffectCoordinator() : WriteEffectCoordinator(Options{}) {}

WriteEffectCoordinator::~WriteEffectCoordinator() { close(); }

void WriteEffectCoordinator::add_effect(const std::string& name, Handler handler, uint32_t event_kinds) {
  if (name.empty()) throw HostError("effect name must not be empty");
  if (!handler) throw HostError("effect '" + name + "': empty handler");
  std::lock_guard effects_lock(impl_->effects_mutex);
  for (const auto& effect : impl_->effects)
    if (effect.name == name) throw HostError("effect '" + name + "' already exists");
  {
    std::lock_guard publish_lock(impl_->publish_mutex);
    if (impl_->closed) throw HostError("the coordinator is closed");
  }
  Impl* impl = impl_.get();
  auto lane = std::make_shared<EffectLane>(name, impl_->options.lane_capacity, std::move(handler), event_kinds,
                                           [impl](const std::string& lane_name, const std::string& error) {
                                             impl->log("effect '" + lane_name + "' failed on an event: " + error);
                                           });
  std::lock_guard publish_lock(impl_->publish_mutex);
  if (impl_->closed) throw HostError("the coordinator is closed");
  // The slot is a host lambda; destroying it later (Signals2 cleans up
  // disconnected slots lazily) runs host code only.
  auto connection = impl_->signal.connect([raw = lane.get()](const EventPtr& event) { raw->push(event); });
  impl_->effects.push_back({name, std::move(lane), std::move(connection)});
}

bool WriteEffectCoordinator::remove_effect(std::string_view name) {
  std::shared_ptr<EffectLane> lane;
  {
    std::lock_guard effects_lock(impl_->effects_mutex);
    auto it = std::find_if(impl_->effects.begin(), impl_->effects.end(),
                           [&](const Impl::Effect& effect) { return effect.name == name; });
    if (it == impl_->effects.end()) return false;
    {
      std::lock_guard publish_lock(impl_->publish_mutex);  // no emit in flight after this
      it->connection.disconnect();
    }
    lane = std::move(it->lane);
    impl_->effects.erase(it);
  }
  lane->close_and_join();
  return true;
}

bool WriteEffectCoordinator::has_effect(std::string_view name) const { return impl_->find(name) != nullptr; }

bool WriteEffectCoordinator::set_event_kinds(std::string_view name, uint32_t event_kinds) {
  auto lane = impl_->find(name);
  if (!lane) return false;
  std::lock_guard publish_lock(impl_->publish_mutex);  // takes effect between two publications
  lane->set_event_kinds(event_kinds);
  return true;
}

bool WriteEffectCoordinator::pause_effect(std::string_view name) {
  auto lane = impl_->find(name);
  if (!lane) return false;
  lane->pause();
  return true;
}

bool WriteEffectCoordinator::resume_effect(std::string_view name) {
  auto lane = impl_->find(name);
  if (!lane) return false;
  lane->resume();
  return true;
}

bool WriteEffectCoordinator::replay_connectivity(std::string_view name) {
  auto lane = impl_->find(name);
  if (!lane) return false;
  std::lock_guard publish_lock(impl_->publish_mutex);
  lane->push(impl_->connectivity_event());
  return true;
}

int64_t WriteEffectCoordinator::publish_mutation(std::string type, std::string payload_json,
                                                 const CommitFunction& commit) {
  auto event = std::make_shared<Event>();
  event->kind = kMutationCommitted;
  event->type = std::move(type);
  event->payload_json = std::move(payload_json);
  std::lock_guard publish_lock(impl_->publish_mutex);
  if (impl_->closed) throw HostError("the coordinator is closed");
  const Commit committed = commit(event->type, event->payload_json);
  event->sequence = committed.sequence;
  event->committed_at_ms = committed.committed_at_ms;
  // Committed: from here on nothing an effect does changes the result.
  impl_->signal(EventPtr(std::move(event)));
  return committed.sequence;
}

void WriteEffectCoordinator::publish_connectivity(bool online, bool metered) {
  std::lock_guard publish_lock(impl_->publish_mutex);
  if (impl_->closed) throw HostError("the coordinator is closed");
  impl_->online = online;
  impl_->metered = metered;
  impl_->signal(impl_->connectivity_event());
}

void WriteEffectCoordinator::publish_setting(std::string key, std::string value_json,
                                             const std::function<void()>& persist) {
  auto event = std::make_shared<Event>();
  event->kind = kSettingChanged;
  event->setting_key = std::move(key);
  event->setting_value_json = std::move(value_json);
  std::lock_guard publish_lock(impl_->publish_mutex);
  if (impl_->closed) throw HostError("the coordinator is closed");
  if (persist) persist();
  impl_->signal(EventPtr(std::move(event)));
}

bool WriteEffectCoordinator::online() const {
  std::lock_guard publish_lock(impl_->publish_mutex);
  return impl_->online;
}

void WriteEffectCoordinator::flush() {
  std::vector<std::shared_ptr<EffectLane>> lanes;
  {
    std::lock_guard lock(impl_->effects_mutex);
    for (const auto& effect : impl_->effects) lanes.push_back(effect.lane);
  }
  for (auto& lane : lanes) lane->wait_processed();
}

bool WriteEffectCoordinator::flush_effect(std::string_view name) {
  auto lane = impl_->find(name);
  if (!lane) return false;
  lane->wait_processed();
  return true;
}

bool WriteEffectCoordinator::flush_effect(std::string_view name, std::chrono::milliseconds timeout) {
  auto lane = impl_->find(name);
  return lane && lane->wait_processed_for(timeout);
}

std::vector<EffectStats> WriteEffectCoordinator::stats() const {
  std::vector<EffectStats> all;
  std::lock_guard lock(impl_->effects_mutex);
  all.reserve(impl_->effects.size());
  for (const auto& effect : impl_->effects) all.push_back(effect.lane->stats());
  return all;
}

std::optional<EffectStats> WriteEffectCoordinator::effect_stats(std::string_view name) const {
  auto lane = impl_->find(name);
  if (!lane) return std::nullopt;
  return lane->stats();
}

void WriteEffectCoordinator::close() {
  std::vector<Impl::Effect> effects;
  {
    std::lock_guard effects_lock(impl_->effects_mutex);
    std::lock_guard publish_lock(impl_->publish_mutex);
    impl_->closed = true;
    for (auto& effect : impl_->effects) effect.connection.disconnect();
    effects.swap(impl_->effects);
  }
  for (auto it = effects.rbegin(); it != effects.rend(); ++it) it->lane->close_and_join();
}

bool WriteEffectCoordinator::closed() const {
  std::lock_guard publish_lock(impl_->publish_mutex);
  return impl_->closed;
}

}  // namespace wep
