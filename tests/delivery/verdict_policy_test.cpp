// The flusher's verdict policy (plugins/analytics/verdict_policy.hpp) as a
// table: each verdict in each pass state, and the end of a pass.
#define BOOST_TEST_MODULE verdict_policy
#include "verdict_policy.hpp"

#include <wep/plugin_api.h>

#include <boost/test/unit_test.hpp>
#include <string>

using wep::analytics::end_of_parts;
using wep::analytics::next_step;
using wep::analytics::PartStep;
using wep::analytics::PartVerdict;
using wep::analytics::PassEnd;
using wep::analytics::PassState;
using wep::analytics::step_name;

namespace {

struct Row {
  const char* what;
  int32_t kind;
  size_t rows;
  size_t flagged;
  bool whole_batch;
  bool accepted_before;   // a part of the batch was delivered earlier in the pass
  bool escalated_before;  // the pass already escalated
  uint32_t streak_before;
  PartStep expected;
  bool accepted_after;
  bool escalated_after;
  uint32_t streak_after;
};

constexpr uint32_t N = 3;  // split after this many transient failures in a row

// clang-format off
const Row kTable[] = {
    // what                                   kind                    rows flag whole  acc    esc   streak expected                 acc    esc    streak
    {"delivered",                            WEP_VERDICT_DELIVERED,   10, 0, true,  false, false, 2, PartStep::kDelivered,    true,  false, 0},
    {"refused batch: split to find out",     WEP_VERDICT_REJECTED,    10, 10, true, false, false, 0, PartStep::kSplit,        false, false, 0},
    {"refused half, nothing accepted: hold", WEP_VERDICT_REJECTED,    5, 5, false,  false, false, 0, PartStep::kHold,         false, false, 0},
    {"refused half beside accepted: split",  WEP_VERDICT_REJECTED,    5, 5, false,  true,  false, 0, PartStep::kSplit,        true,  false, 0},
    {"refused single, nothing accepted",     WEP_VERDICT_REJECTED,    1, 1, false,  false, false, 0, PartStep::kHold,         false, false, 0},
    {"refused single batch: hold",           WEP_VERDICT_REJECTED,    1, 1, true,   false, false, 0, PartStep::kHold,         false, false, 0},
    {"refused single beside accepted",       WEP_VERDICT_REJECTED,    1, 1, false,  true,  false, 0, PartStep::kDeadLetter,   true,  false, 0},
    {"rejected without flags: all refused",  WEP_VERDICT_REJECTED,    4, 0, true,   false, false, 0, PartStep::kSplit,        false, false, 0},
    {"transport named the bad rows",         WEP_VERDICT_REJECTED,    10, 3, true,  false, false, 0, PartStep::kHoldFlagged,  false, false, 0},
    {"too large batch: split",               WEP_VERDICT_TOO_LARGE,   10, 0, false, false, false, 0, PartStep::kSplit,        false, false, 0},
    {"too large single, nothing accepted",   WEP_VERDICT_TOO_LARGE,   1, 0, false,  false, false, 0, PartStep::kHold,         false, false, 0},
    {"too large single beside accepted",     WEP_VERDICT_TOO_LARGE,   1, 0, false,  true,  false, 0, PartStep::kDeadLetter,   true,  false, 0},
    {"transient, first: back off",           WEP_VERDICT_RETRY_LATER, 10, 0, true,  false, false, 0, PartStep::kBackoff,      false, false, 1},
    {"transient, second: back off",          WEP_VERDICT_RETRY_LATER, 10, 0, true,  false, false, 1, PartStep::kBackoff,      false, false, 2},
    {"transient, N-th: still back off",      WEP_VERDICT_RETRY_LATER, 10, 0, true,  false, false, N - 1, PartStep::kBackoff, false, false, N},
    {"transient, (N+1)-th: split like a 413", WEP_VERDICT_RETRY_LATER, 10, 0, true, false, false, N, PartStep::kSplit,  false, true,  N + 1},
    {"transient half after escalation",      WEP_VERDICT_RETRY_LATER, 5, 0, false,  false, true,  N + 1, PartStep::kHold,     false, true,  N + 2},
    {"escalated single beside accepted",     WEP_VERDICT_RETRY_LATER, 1, 0, false,  true,  true,  0, PartStep::kDeadLetter,   true,  true,  1},
    {"failed (auth, table): back off at max", WEP_VERDICT_FAILED,     10, 0, true,  false, false, 1, PartStep::kBackoffAtMax, false, false, 1},
    {"unknown verdict counts as failed",     99,                      10, 0, true,  false, false, 0, PartStep::kBackoffAtMax, false, false, 0},
};
// clang-format on

}  // namespace

BOOST_AUTO_TEST_CASE(each_verdict_in_each_state) {
  for (const Row& row : kTable) {
    BOOST_TEST_CONTEXT(row.what) {
      PartVerdict verdict;
      verdict.kind = row.kind;
      verdict.rows = row.rows;
      verdict.flagged = row.flagged;
      verdict.whole_batch = row.whole_batch;
      PassState pass;
      pass.accepted = row.accepted_before;
      pass.escalated = row.escalated_before;
      uint32_t streak = row.streak_before;
      const PartStep step = next_step(verdict, pass, streak, N);
      BOOST_TEST(std::string(step_name(step)) == step_name(row.expected));
      BOOST_TEST(pass.accepted == row.accepted_after);
      BOOST_TEST(pass.escalated == row.escalated_after);
      BOOST_TEST(streak == row.streak_after);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_end_of_a_pass) {
  PassState nothing_accepted;
  PassState accepted;
  accepted.accepted = true;
  BOOST_TEST((end_of_parts(nothing_accepted, 0) == PassEnd::kDone));
  BOOST_TEST((end_of_parts(accepted, 0) == PassEnd::kDone));
  BOOST_TEST((end_of_parts(accepted, 2) == PassEnd::kResolveHeld));  // bad rows among good ones
  BOOST_TEST((end_of_parts(nothing_accepted, 2) == PassEnd::kSystemic));
}

// A whole pass against a server that refuses every row: three requests, then
// systemic, and not one row dead-lettered.
BOOST_AUTO_TEST_CASE(a_server_refusing_everything_costs_three_requests_and_no_row) {
  PassState pass;
  uint32_t streak = 0;
  PartVerdict whole{WEP_VERDICT_REJECTED, 200, 200, true};
  BOOST_TEST((next_step(whole, pass, streak, N) == PartStep::kSplit));
  PartVerdict half{WEP_VERDICT_REJECTED, 100, 100, false};
  BOOST_TEST((next_step(half, pass, streak, N) == PartStep::kHold));
  BOOST_TEST((next_step(half, pass, streak, N) == PartStep::kHold));
  BOOST_TEST((end_of_parts(pass, 2) == PassEnd::kSystemic));
}
