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

// While alive, ParallelFor calls made on THIS thread hand their tasks to `run` instead of the pool:
// W4A8MatMul inside ONNX Runtime runs them on the session's intra-op threads, so one set of threads
// serves the whole graph (no second pool spinning on the cores ORT's other nodes need). `run` must
// call fn(i) once for each i in [0, count) and return when all are done; tasks it runs must not
// throw (the hook catches and rethrows on this thread). ParallelFor calls made from inside such a
// task run serially.
class ScopedTaskRunner {
 public:
  using RunFn = void (*)(void* ctx, int64_t count, const std::function<void(int64_t)>& fn);
  ScopedTaskRunner(RunFn run, void* ctx);
  ~ScopedTaskRunner();
  ScopedTaskRunner(const ScopedTaskRunner&) = delete;
  ScopedTaskRunner& operator=(const ScopedTaskRunner&) = delete;

 private:
  RunFn prev_run_;
  void* prev_ctx_;
};

}  // namespace w4a8::cpu
