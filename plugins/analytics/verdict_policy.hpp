// VerdictPolicy: what the flusher does with a transport's verdict on one part
// of a batch. Pure: no I/O, no clock, no threads; table-tested on its own
// (tests/delivery/verdict_policy_test.cpp).
//
// Systemic failures versus bad rows. A row is dead-lettered only when it is
// refused while other rows of the same batch are accepted in the same pass.
// A refused part is split in halves to find the bad rows; while no row of
// the batch has been accepted, a refused half is held aside instead of being
// split further. When the pass runs out of parts:
//   - some row was accepted: the held parts are split on (a held single row
//     is dead-lettered), since the refusal is a property of those rows;
//   - no row was accepted: the failure is systemic (a missing column, a stale
//     schema cache, an auth problem that answers 400): every row is kept and
//     the flusher backs off at backoff.max_ms with the error in stats.
// So a server that refuses everything costs three requests per batch and
// backoff.max_ms, and never dead-letters a row.
//
// Transient failures (RETRY_LATER: 5xx, 408, 429, a timeout, a lost
// connection) back off (Retry-After honoured within the backoff bounds, see
// backoff.hpp). When a batch fails again after kSplitAfterTransientFailures
// transient failures in a row (so the fourth such failure in a row), the pass
// escalates: from then on a transient failure is handled like a refusal
// (split, held, dead-lettered only beside accepted rows), so one slow or
// poisonous batch (e.g. a statement timeout, HTTP 500 with SQLSTATE 57014)
// never blocks the rows behind it.
//
// TOO_LARGE splits whatever its size; a single row still too large is a
// refusal. REJECTED with some rows flagged and some not (the transport named
// the bad rows) holds the flagged ones and re-sends the others. FAILED (auth,
// missing table, bad config) keeps every row and backs off at the maximum.
// PER_ROW (API 1.2: the transport settled each row) deletes the delivered
// rows, dead-letters the refused ones when some row of the batch was accepted
// (holds them otherwise, like flagged rows), and backs off as for a transient
// failure when any row is to be sent again.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wep::analytics {

// Transient failures in a row after which the next one splits like a 413.
constexpr uint32_t kSplitAfterTransientFailures = 3;

// What is known about the verdict on one part sent.
struct PartVerdict {
  int32_t kind = 0;           // WEP_VERDICT_*
  size_t rows = 0;            // rows in the part (>= 1)
  size_t flagged = 0;         // rows flagged in `rejected` (REJECTED only)
  bool whole_batch = false;   // the part is the batch as read, not a piece of it
  size_t rows_delivered = 0;  // rows settled as delivered (PER_ROW only)
};

// The state of one pass over one batch.
struct PassState {
  bool accepted = false;   // some row of the batch was delivered in this pass
  bool escalated = false;  // transient failures count as refusals (see top)
};

enum class PartStep {
  kDelivered,     // stored at the server: delete the rows
  kSplit,         // send the two halves
  kHoldFlagged,   // hold the flagged rows (as kHold), re-send the others
  kHold,          // refused while nothing is accepted yet: hold until the pass ends
  kDeadLetter,    // refused while other rows of the batch were accepted
  kBackoff,       // transient: stop the pass, keep the rows, back off
  kBackoffAtMax,  // not transient: stop the pass, keep the rows, back off at max
  kSettleRows,    // per row: delete delivered, hold refused, back off if any to resend
};

// Decides the step for `verdict` and updates `pass` and `transient_streak`
// (consecutive RETRY_LATER verdicts, kept by the caller across passes; reset
// by a delivery or by coming online). `split_after` is
// kSplitAfterTransientFailures in production.
PartStep next_step(const PartVerdict& verdict, PassState& pass, uint32_t& transient_streak,
                   uint32_t split_after = kSplitAfterTransientFailures);

enum class PassEnd {
  kDone,         // nothing held: every row is settled
  kResolveHeld,  // rows were accepted: split the held parts, dead-letter held singles
  kSystemic,     // nothing accepted: keep every row, back off at max
};

// What to do when the pass has sent every part it could.
PassEnd end_of_parts(const PassState& pass, size_t held_parts);

const char* step_name(PartStep step);

}  // namespace wep::analytics
