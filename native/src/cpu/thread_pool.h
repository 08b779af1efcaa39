// The one persistent thread pool of the process: the CPU kernels, and through linalg/parallel.h the
// linear algebra, quantizers and calibration (all hardware threads by default; cpu::SetNumThreads).
#pragma once
#include <cstdint>
#include <functional>

namespace w4a8::cpu {

// Runs fn(i) for every i in [0, count), spread over the pool's threads plus the caller; returns when
// all are done. Tasks are claimed dynamically, so fn must make each i's result independent of which
// thread runs it. A call made while the pool is busy (another caller thread, or from inside a task)
// runs serially on its own thread instead of waiting.
void ParallelFor(int64_t count, const std::function<void(int64_t)>& fn);

}  // namespace w4a8::cpu
