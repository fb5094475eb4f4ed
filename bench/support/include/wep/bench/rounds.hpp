// How every benchmark reports a figure: measured in several rounds, printed
// as the median with the spread (lowest and highest round) and the rounds
// themselves, one figure per line:
//   name: <median> <unit> (min <lo>, max <hi>, N rounds: r1 r2 ...)
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace wep::bench {

// The median of `values` (the mean of the middle two for an even count).
inline double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// The value at quantile `q` (0..1) of `values` (nearest rank).
inline double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  const auto index = static_cast<size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

// Prints one figure measured once per round.
inline void print_rounds(const std::string& name, const std::vector<double>& rounds, const char* unit,
                         int decimals = 2) {
  if (rounds.empty()) return;
  const auto [lo, hi] = std::minmax_element(rounds.begin(), rounds.end());
  std::printf("%s: %.*f %s (min %.*f, max %.*f, %zu rounds:", name.c_str(), decimals, median(rounds), unit, decimals,
              *lo, decimals, *hi, rounds.size());
  for (double value : rounds) std::printf(" %.*f", decimals, value);
  std::printf(")\n");
  std::fflush(stdout);
}

// Prints a figure that is a single measurement (a sample, not a rate).
inline void print_once(const std::string& name, double value, const char* unit, int decimals = 2) {
  std::printf("%s: %.*f %s\n", name.c_str(), decimals, value, unit);
  std::fflush(stdout);
}

}  // namespace wep::bench
