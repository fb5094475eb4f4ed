#include "verdict_policy.hpp"

#include <wep/plugin_api.h>

namespace wep::analytics {
namespace {

// A part refused (all its rows) by the server or the transport.
PartStep refused(const PartVerdict& verdict, const PassState& pass) {
  if (verdict.rows > 1) return pass.accepted || verdict.whole_batch ? PartStep::kSplit : PartStep::kHold;
  return pass.accepted ? PartStep::kDeadLetter : PartStep::kHold;
}

}  // namespace

PartStep next_step(const PartVerdict& verdict, PassState& pass, uint32_t& transient_streak, uint32_t split_after) {
  switch (verdict.kind) {
    case WEP_VERDICT_DELIVERED:
      pass.accepted = true;
      transient_streak = 0;
      return PartStep::kDelivered;
    case WEP_VERDICT_RETRY_LATER:
      if (transient_streak < UINT32_MAX) ++transient_streak;
      if (transient_streak > split_after) pass.escalated = true;
      return pass.escalated ? refused(verdict, pass) : PartStep::kBackoff;
    case WEP_VERDICT_TOO_LARGE:
      return verdict.rows > 1 ? PartStep::kSplit : refused(verdict, pass);
    case WEP_VERDICT_REJECTED:
      if (verdict.flagged > 0 && verdict.flagged < verdict.rows) return PartStep::kHoldFlagged;
      return refused(verdict, pass);
    case WEP_VERDICT_PER_ROW:
      if (verdict.rows_delivered > 0) {
        pass.accepted = true;
        transient_streak = 0;
      }
      return PartStep::kSettleRows;
    case WEP_VERDICT_FAILED:
    default:
      return PartStep::kBackoffAtMax;
  }
}

PassEnd end_of_parts(const PassState& pass, size_t held_parts) {
  if (held_parts == 0) return PassEnd::kDone;
  return pass.accepted ? PassEnd::kResolveHeld : PassEnd::kSystemic;
}

const char* step_name(PartStep step) {
  switch (step) {
    case PartStep::kDelivered:
      return "delivered";
    case PartStep::kSplit:
      return "split";
    case PartStep::kHoldFlagged:
      return "hold flagged";
    case PartStep::kHold:
      return "hold";
    case PartStep::kDeadLetter:
      return "dead-letter";
    case PartStep::kBackoff:
      return "backoff";
    case PartStep::kBackoffAtMax:
      return "backoff at max";
    case PartStep::kSettleRows:
      return "settle rows";
  }
  return "?";
}

}  // namespace wep::analytics
