// Fixed-chunk fork-join for linalg, quantization and calibration, on the kernels' persistent pool
// (cpu/thread_pool.h): one thread runtime in the process, sized by cpu::SetNumThreads.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/thread_pool.h"
#include "w4a8/cpu_kernels.h"

namespace w4a8 {

// The chunk count a routine uses for a `threads` argument: <= 0 means the pool's size.
inline int ChunkCount(int threads) { return threads > 0 ? threads : cpu::NumThreads(); }

// Runs fn(begin, end) over [0, count) split into `threads` contiguous, `align`-multiple chunks
// (threads <= 0: cpu::NumThreads()). The chunk bounds depend only on the arguments, never on which
// pool thread runs a chunk, so a routine whose result depends on its chunking (a sum per chunk) stays
// deterministic for a given chunk count. An exception thrown by fn (bad_alloc in a worker) is
// rethrown here, on the caller's thread, after every chunk has finished.
template <typename Fn>
void ParallelRanges(int threads, int64_t count, int64_t align, Fn&& fn) {
  if (count <= 0) return;
  if (align < 1) align = 1;
  const int64_t units = (count + align - 1) / align;
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(ChunkCount(threads), units));
  if (t == 1) {
    fn((int64_t)0, count);
    return;
  }
  cpu::ParallelFor(t, [&](int64_t i) {
    const int64_t b = std::min(count, (units * i / t) * align);
    const int64_t e = std::min(count, (units * (i + 1) / t) * align);
    if (b < e) fn(b, e);
  });
}

}  // namespace w4a8
