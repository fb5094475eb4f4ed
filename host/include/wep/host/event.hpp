// One event on a host's WriteEffectCoordinator, as host-side effects see it.
#pragma once

#include <wep/plugin_api.h>

#include <cstdint>
#include <memory>
#include <string>

namespace wep {

// Event kinds; the same bits as WEP_EVENT_* in plugin_api.h, usable as masks.
inline constexpr uint32_t kMutationCommitted = WEP_EVENT_MUTATION_COMMITTED;
inline constexpr uint32_t kConnectivityChanged = WEP_EVENT_CONNECTIVITY_CHANGED;
inline constexpr uint32_t kSettingChanged = WEP_EVENT_SETTING_CHANGED;
inline constexpr uint32_t kAllEvents = kMutationCommitted | kConnectivityChanged | kSettingChanged;

// Immutable once published; every effect's lane shares the same object.
// Only the members matching `kind` are meaningful.
struct Event {
  uint32_t kind = 0;  // exactly one of the kinds above
  // mutation_committed
  int64_t sequence = 0;  // the host's event-log sequence number, > 0
  std::string type;
  std::string payload_json;  // a JSON object; may hold PII
  int64_t committed_at_ms = 0;
  // connectivity_changed
  bool online = false;
  bool metered = false;
  // setting_changed
  std::string setting_key;
  std::string setting_value_json;
};

using EventPtr = std::shared_ptr<const Event>;

}  // namespace wep
