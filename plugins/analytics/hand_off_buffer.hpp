// The bounded hand-off between the host's lane thread (producer) and the
// plugin's writer thread (consumer).
//
// The producer copies an event's bytes into a flat arena under a short mutex
// and returns: no allocation once the arenas have grown, no waiting, no
// system call unless the writer is asleep. When the buffer holds
// `max_events` events or `max_bytes` bytes the event is refused (the caller
// counts the drop). The writer swaps the whole buffer out in O(1) (double
// buffering), so memory stays bounded by two buffers' worth.
//
// Thread safety: every method may be called from any thread; typically one
// producer calls try_push, one consumer calls take.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mapping_counts.hpp"

namespace wep::analytics {

// Events moved out of the buffer in one take(), in the order they were
// pushed.
class HandOffBatch {
 public:
  enum class Kind : uint8_t {
    mutation,         // not mapped yet: type, payload, sequence, committed_at_ms
    mapped,           // mapped by the producer: type is the row's event type, payload its properties JSON
    mapped_bare,      // mapped, no property kept: type is the row's event type, payload empty (NULL properties)
    not_recorded,     // the mapping refused it: only sequence, committed_at_ms and the counts
    enabled_changed,  // analytics_enabled changed; payload is its JSON value
  };
  struct Event {
    Kind kind;
    bool has_counts;  // the producer's mapping dropped something: counts(event)
    size_t type_offset;
    size_t type_size;
    size_t payload_offset;
    size_t payload_size;
    int64_t sequence;  // the host's event-log sequence of a mutation (0: none)
    int64_t committed_at_ms;
  };

  size_t size() const { return events_.size(); }
  bool empty() const { return events_.empty(); }
  const Event& operator[](size_t i) const { return events_[i]; }
  std::string_view type(const Event& e) const { return {arena_.data() + e.type_offset, e.type_size}; }
  std::string_view payload(const Event& e) const { return {arena_.data() + e.payload_offset, e.payload_size}; }
  // What the producer's mapping dropped (all zero without has_counts).
  MappingCounts counts(const Event& e) const {
    MappingCounts counts;
    if (e.has_counts) std::memcpy(&counts, arena_.data() + e.payload_offset + e.payload_size, sizeof(counts));
    return counts;
  }
  // Mutations try_push refused (buffer full) since the previous take().
  uint64_t refused() const { return refused_; }
  // Empties the batch, keeping its capacity.
  void clear() {
    arena_.clear();
    events_.clear();
    refused_ = 0;
  }

 private:
  friend class HandOffBuffer;
  std::string arena_;
  std::vector<Event> events_;
  uint64_t refused_ = 0;
};

class HandOffBuffer {
 public:
  HandOffBuffer(size_t max_events, size_t max_bytes);

  // Producer: copies a mutation in (kind: mutation, mapped, mapped_bare or
  // not_recorded; see HandOffBatch::Kind for what type and payload hold),
  // with what its mapping dropped, if anything (`counts`, may be null).
  // False when the buffer is full, the event alone exceeds max_bytes, or
  // stop was requested; never blocks beyond the short internal mutex.
  bool try_push(HandOffBatch::Kind kind, std::string_view type, std::string_view payload_json, int64_t committed_at_ms,
                int64_t sequence, const MappingCounts* counts = nullptr);
  bool try_push(std::string_view type, std::string_view payload_json, int64_t committed_at_ms, int64_t sequence = 0) {
    return try_push(HandOffBatch::Kind::mutation, type, payload_json, committed_at_ms, sequence);
  }

  // Producer: a change of analytics_enabled, in order with the mutations.
  // Taken even when the buffer is full (changes are rare and small); false
  // only after stop was requested.
  bool push_enabled_changed(std::string_view value_json);

  // How many events try_push has accepted so far: a ticket. Every accepted
  // event with a number <= the ticket is in a batch handed out by take()
  // once take() has returned a value >= the ticket.
  uint64_t accepted() const;

  // Consumer: waits until there are events, stop was requested, or
  // `deadline` has passed; then moves every buffered event into `out` (which
  // is cleared first) and returns the ticket of the last event moved.
  // `*stopped` (if given) tells whether stop had been requested at the
  // moment of the move: then no event can follow the ones moved.
  uint64_t take(HandOffBatch& out, std::chrono::steady_clock::time_point deadline, bool* stopped = nullptr);

  // Wakes the consumer; later try_push calls are refused.
  void request_stop();
  // Events buffered now (not yet taken).
  size_t buffered() const;

 private:
  const size_t max_events_;
  const size_t max_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  HandOffBatch pending_;
  uint64_t accepted_ = 0;
  uint64_t refused_ = 0;  // since the last take
  bool consumer_waiting_ = false;
  bool stop_ = false;
};

}  // namespace wep::analytics
