// A minimal fork-join helper: the calls that use it are large (milliseconds or more), so starting
// std::threads per call costs little and keeps the core free of a global pool shared with the addon.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace w4a8 {

// Runs fn(begin, end) over [0, count) split into `threads` contiguous, `align`-multiple chunks.
template <typename Fn>
void ParallelRanges(int threads, int64_t count, int64_t align, Fn&& fn) {
  if (count <= 0) return;
  if (align < 1) align = 1;
  const int64_t units = (count + align - 1) / align;
  const int t = (int)std::max<int64_t>(1, std::min<int64_t>(threads, units));
  if (t == 1) {
    fn((int64_t)0, count);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  auto range = [&](int i, int64_t* b, int64_t* e) {
    *b = std::min(count, (units * i / t) * align);
    *e = std::min(count, (units * (i + 1) / t) * align);
  };
  for (int i = 1; i < t; ++i) {
    int64_t b, e;
    range(i, &b, &e);
    pool.emplace_back([&fn, b, e]() { if (b < e) fn(b, e); });
  }
  int64_t b, e;
  range(0, &b, &e);
  if (b < e) fn(b, e);
  for (auto& th : pool) th.join();
}

}  // namespace w4a8
