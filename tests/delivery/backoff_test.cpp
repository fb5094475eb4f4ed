// Backoff: exponential ceiling, full jitter within it, Retry-After within bounds,
// reset after success. Pure computation: no clock, seeded RNG.
#define BOOST_TEST_MODULE backoff
#include "backoff.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <set>

using wep::analytics::Backoff;

BOOST_AUTO_TEST_CASE(ceiling_doubles_from_initial_up_to_max) {
  Backoff backoff(100, 1000, 7);
  const uint64_t expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (uint64_t ceiling : expected) {
    BOOST_TEST(backoff.ceiling_ms() == ceiling);
    backoff.next_delay();
  }
}

BOOST_AUTO_TEST_CASE(delays_are_full_jitter_within_the_ceiling) {
  Backoff backoff(100, 800, 42);
  std::set<int64_t> seen;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint64_t ceiling = backoff.ceiling_ms();
    const int64_t delay = backoff.next_delay().count();
    BOOST_TEST(delay >= 0);
    BOOST_TEST(static_cast<uint64_t>(delay) <= ceiling);
    seen.insert(delay);
  }
  // Jitter: the delays are spread, not one fixed value per attempt.
  BOOST_TEST(seen.size() > 50u);
}

// Full jitter draws from the whole [0, ceiling]; equal jitter would draw from
// [ceiling/2, ceiling] and no jitter would give the ceiling itself. With a
// fixed seed the sample is the same on every run, so the bounds below are
// deterministic; for a uniform draw they hold with a wide margin (4,000 draws:
// the standard error of each share is under 0.008).
BOOST_AUTO_TEST_CASE(full_jitter_is_uniform_over_the_whole_ceiling_unlike_equal_jitter) {
  constexpr uint64_t kMaxMs = 1000;
  Backoff backoff(10, kMaxMs, 20261201);
  while (backoff.ceiling_ms() < kMaxMs) backoff.next_delay();  // at the cap: every draw has the same ceiling
  constexpr int kDraws = 4000;
  int below_quarter = 0, below_half = 0, above_three_quarters = 0;
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const auto delay = static_cast<uint64_t>(backoff.next_delay().count());
    BOOST_TEST_REQUIRE(delay <= kMaxMs);
    sum += static_cast<double>(delay);
    if (delay < kMaxMs / 4) ++below_quarter;
    if (delay < kMaxMs / 2) ++below_half;
    if (delay > kMaxMs * 3 / 4) ++above_three_quarters;
  }
  const double mean = sum / kDraws;
  BOOST_TEST_MESSAGE("mean " << mean << " ms; below 1/4: " << below_quarter << ", below 1/2: " << below_half
                             << ", above 3/4: " << above_three_quarters << " of " << kDraws);
  BOOST_TEST(mean > 450.0);  // full jitter: about 500; equal jitter: about 750; none: 1000
  BOOST_TEST(mean < 550.0);
  BOOST_TEST(below_half > kDraws * 45 / 100);  // equal jitter: none at all
  BOOST_TEST(below_half < kDraws * 55 / 100);
  BOOST_TEST(below_quarter > kDraws * 20 / 100);
  BOOST_TEST(below_quarter < kDraws * 30 / 100);
  BOOST_TEST(above_three_quarters > kDraws * 20 / 100);
  BOOST_TEST(above_three_quarters < kDraws * 30 / 100);
}

BOOST_AUTO_TEST_CASE(same_seed_same_delays) {
  Backoff a(50, 5000, 1234), b(50, 5000, 1234);
  for (int i = 0; i < 20; ++i) BOOST_TEST(a.next_delay().count() == b.next_delay().count());
}

BOOST_AUTO_TEST_CASE(retry_after_replaces_the_draw_within_initial_and_max) {
  Backoff backoff(100, 1000, 3);
  BOOST_TEST(backoff.next_delay(250).count() == 250);
  BOOST_TEST(backoff.next_delay(0).count() == 100);       // never a tight loop
  BOOST_TEST(backoff.next_delay(60000).count() == 1000);  // never past the configured maximum
  BOOST_TEST(backoff.failures() == 3u);                   // each one still counts as a failure
  BOOST_TEST(backoff.next_delay(INT64_MAX).count() == 1000);
}

BOOST_AUTO_TEST_CASE(max_delay_for_permanent_failures_and_reset_after_success) {
  Backoff backoff(100, 30000, 9);
  BOOST_TEST(backoff.max_delay().count() == 30000);
  BOOST_TEST(backoff.failures() == 1u);
  backoff.next_delay();
  backoff.reset();
  BOOST_TEST(backoff.failures() == 0u);
  BOOST_TEST(backoff.ceiling_ms() == 100u);
}

BOOST_AUTO_TEST_CASE(degenerate_config_is_made_safe) {
  Backoff backoff(0, 0, 5);  // the schema forbids it; the class still copes
  BOOST_TEST(backoff.initial_ms() == 1u);
  BOOST_TEST(backoff.max_ms() == 1u);
  BOOST_TEST(backoff.next_delay().count() <= 1);
}
