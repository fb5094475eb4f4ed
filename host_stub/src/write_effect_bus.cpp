// g++ 12 reports a false -Wmaybe-uninitialized inside Boost.Signals2's
// slot-group map (boost::optional<int> group key) when inlined with
// optimisation and sanitizers; the value is never read uninitialised. The
// pragma precedes every include so it covers those header locations, and
// this file holds nothing but the signal.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "write_effect_bus.hpp"

#include <boost/signals2/signal.hpp>
#include <map>
#include <mutex>

#include "effect_lane.hpp"

namespace host_stub {

struct WriteEffectBus::Impl {
  boost::signals2::signal<void(const HostEventPtr&)> signal;
  std::mutex connections_mutex;
  std::map<uint64_t, boost::signals2::connection> connections;
  uint64_t next_id = 1;
};

WriteEffectBus::WriteEffectBus() : impl_(std::make_unique<Impl>()) {}

WriteEffectBus::~WriteEffectBus() {
  for (auto& [id, connection] : impl_->connections) connection.disconnect();
}

uint64_t WriteEffectBus::connect(EffectLane& lane) {
  // The slot object is a host lambda; destroying it later (signals2 cleans
  // up disconnected slots lazily) runs host code only.
  auto connection = impl_->signal.connect([lane = &lane](const HostEventPtr& event) { lane->push(event); });
  std::lock_guard lock(impl_->connections_mutex);
  const uint64_t id = impl_->next_id++;
  impl_->connections.emplace(id, std::move(connection));
  return id;
}

void WriteEffectBus::disconnect(uint64_t connection_id) {
  std::lock_guard lock(impl_->connections_mutex);
  auto it = impl_->connections.find(connection_id);
  if (it == impl_->connections.end()) return;
  it->second.disconnect();
  impl_->connections.erase(it);
}

void WriteEffectBus::emit(const HostEventPtr& event) { impl_->signal(event); }

}  // namespace host_stub
