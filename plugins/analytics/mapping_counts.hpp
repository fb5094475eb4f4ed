// What mapping one mutation dropped: increments for the Stats counters of
// the same names, carried with the event until it is known to count (the
// writer records it), so that an event is counted once however many times
// it is mapped (on the host's lane, then again from the event log).
#pragma once

#include <cstdint>

namespace wep::analytics {

struct MappingCounts {
  int32_t dropped_unmapped = 0;
  int32_t dropped_invalid = 0;
  int32_t pii_email = 0;
  int32_t pii_phone = 0;
  int32_t pii_ip = 0;  // IP and MAC addresses
  int32_t pii_url = 0;
  int32_t pii_long_number = 0;  // long numbers and card numbers
  int32_t pii_secret = 0;
  int32_t properties_dropped_type = 0;
  int32_t properties_dropped_long = 0;

  // properties_dropped_pii: the six kinds together.
  int32_t pii() const { return pii_email + pii_phone + pii_ip + pii_url + pii_long_number + pii_secret; }
  bool any() const {
    return dropped_unmapped != 0 || dropped_invalid != 0 || pii() != 0 || properties_dropped_type != 0 ||
           properties_dropped_long != 0;
  }
};

}  // namespace wep::analytics
