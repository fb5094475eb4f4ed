// WriteEffectBus: the host's WriteEffectCoordinator signal. A
// boost::signals2::signal whose every slot is a host object (a thunk pushing
// into one EffectLane); plugin code never creates a slot. Kept in its own
// translation unit so Boost.Signals2 is compiled once.
#pragma once

#include <cstdint>
#include <memory>

#include "host_event.hpp"

namespace host_stub {

class EffectLane;

// Thread safety: as boost::signals2::signal (connect, disconnect and emit
// from any thread). The host serialises emit and disconnect with its bus
// mutex, so after disconnect() returns no slot call of that lane is running.
class WriteEffectBus {
 public:
  WriteEffectBus();
  ~WriteEffectBus();
  WriteEffectBus(const WriteEffectBus&) = delete;
  WriteEffectBus& operator=(const WriteEffectBus&) = delete;

  // Connects a host thunk that pushes every emitted event into `lane`
  // (which must outlive the connection). Returns the connection's id.
  uint64_t connect(EffectLane& lane);
  // Idempotent; unknown ids are ignored.
  void disconnect(uint64_t connection_id);
  // Calls every connected slot in connection order.
  void emit(const HostEventPtr& event);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace host_stub
