// HostEvent: one immutable bus event, shared (not copied) by every lane.
#pragma once

#include <cstdint>
#include <host_stub/host.hpp>
#include <memory>
#include <string>

namespace host_stub {

struct HostEvent {
  uint32_t kind = 0;  // exactly one of kMutationCommitted, kConnectivityChanged, kSettingChanged
  // mutation_committed
  int64_t sequence = 0;
  std::string type;
  std::string payload_json;
  int64_t committed_at_ms = 0;
  // connectivity_changed
  bool online = false;
  // setting_changed
  std::string setting_key;
  std::string setting_value_json;

  EventView view() const {
    EventView v;
    v.kind = kind;
    v.sequence = sequence;
    v.type = type;
    v.payload_json = payload_json;
    v.committed_at_ms = committed_at_ms;
    v.online = online;
    v.setting_key = setting_key;
    v.setting_value_json = setting_value_json;
    return v;
  }
};

// Events are immutable once published; lanes hold them by shared pointer.
using HostEventPtr = std::shared_ptr<const HostEvent>;

}  // namespace host_stub
