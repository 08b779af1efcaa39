// Timing helpers the standalone benchmarks share: wall time, process CPU time (all threads: on a
// shared machine, wall over CPU time shows how much of the cores a run got), and the median.
#pragma once
#include <algorithm>
#include <chrono>
#include <ctime>
#include <vector>

namespace w4a8::bench {

inline double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

inline double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace w4a8::bench
