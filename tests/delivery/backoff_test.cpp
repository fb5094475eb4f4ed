// Backoff: exponential ceiling, full jitter within it, Retry-After within bounds,
// reset after success. Pure computation: no clock, seeded RNG.
#define BOOST_TEST_MODULE backoff
#include "backoff.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <set>

using analytics::Backoff;

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
