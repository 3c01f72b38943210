// cli/bench_timing.h: how `wafer bench` times a measurement: the best of several runs, since on a
// shared 2-core machine the least time is the one undisturbed by other work.
#pragma once
#include <algorithm>
#include <chrono>

namespace wafer::cli {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The least of measure()'s results (seconds) over at least `repeats` calls and at least two
// seconds in all (at most 100 calls): a short measure needs many tries to catch one undisturbed.
template <typename F>
double least_seconds(int repeats, F&& measure) {
  double best = 1e30, total = 0;
  for (int r = 0; r < 100 && (r < repeats || total < 2.0); ++r) {
    const double s = measure();
    best = std::min(best, s), total += s;
  }
  return best;
}

// Best wall time of f() after one warm-up call, by the rule of least_seconds.
template <typename F>
double best_seconds(int repeats, F&& f) {
  f();
  return least_seconds(repeats, [&] {
    auto t0 = Clock::now();
    f();
    return seconds_since(t0);
  });
}

}  // namespace wafer::cli
