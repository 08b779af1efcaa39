// Persistent pool. Each ParallelFor publishes a reference-counted Job; threads claim task indices from
// it and the caller returns once every task has FINISHED, without waiting for workers that never got
// scheduled (on an oversubscribed 2-core machine a descheduled worker would otherwise stall each call).
// A late worker still holding an old Job only sees its exhausted counter and never calls its function.
// Workers spin briefly on a generation counter before sleeping: a GEMV call lasts ~0.1-1 ms, so a
// condition-variable wake-up per call would cost a visible fraction.
#include "cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "w4a8/cpu_kernels.h"

namespace w4a8::cpu {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker polls for the next job before sleeping (W4A8_POOL_SPIN_US, default 100).
int64_t SpinMicros() {
  static const int64_t us = [] {
    const char* v = std::getenv("W4A8_POOL_SPIN_US");
    if (!v || !*v) return (int64_t)100;
    char* end = nullptr;
    const long long x = std::strtoll(v, &end, 10);
    return (*end == 0 && x >= 0 && x <= 1000000) ? (int64_t)x : (int64_t)100;
  }();
  return us;
}

int HardwareThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)n;
}

struct Job {
  const std::function<void(int64_t)>* fn;
  int64_t count;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  // The first exception a task threw (e.g. bad_alloc of a per-thread tile buffer): rethrown on the
  // calling thread, where the kernel entry turns it into a Status. Escaping a worker would terminate.
  std::mutex error_mu;
  std::exception_ptr error;

  // Runs tasks until none is left; returns after its last claimed task finished.
  void Drain() {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= count) return;
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

class Pool {
 public:
  int size() {
    std::lock_guard<std::mutex> lock(busy_);
    return (int)workers_.size() + 1;
  }

  void Resize(int threads) {
    std::lock_guard<std::mutex> lock(busy_);
    StopWorkers();
    {
      std::lock_guard<std::mutex> state(mu_);
      stop_ = false;
    }
    // Fewer workers than asked if the OS refuses more threads (a void API must not throw).
    try {
      for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
    } catch (const std::exception&) {
    }
  }

  void Run(int64_t count, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || workers_.empty() || count <= 1) {
      for (int64_t i = 0; i < count; ++i) fn(i);
      return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->count = count;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job->Drain();
    for (int spins = 0; job->done.load(std::memory_order_acquire) != count; ++spins) {
      if (spins > 200) std::this_thread::yield();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (job_ == job) job_.reset();  // the function dies with this call; late workers see no job
    }
    std::lock_guard<std::mutex> lock(job->error_mu);
    if (job->error) std::rethrow_exception(job->error);
  }

 private:
  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      // pause between polls and read the clock every 64th: a clock read per poll showed up as several
      // per cent of a decode step's CPU time (vdso clock_gettime in perf).
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(SpinMicros());
      for (uint32_t polls = 1; generation_.load(std::memory_order_acquire) == seen; ++polls) {
        CpuRelax();
        if (polls % 64 == 0 && std::chrono::steady_clock::now() >= spin_until) break;
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (job) job->Drain();
    }
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex busy_;  // held by the one caller that owns the workers for a job
  std::mutex mu_;    // guards job_, stop_ and the generation change
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> generation_{0};
};

Pool& GlobalPool() {
  static Pool* pool = [] {
    Pool* p = new Pool();  // leaked on purpose: joining threads during static destruction can deadlock
    p->Resize(HardwareThreads());
    return p;
  }();
  return *pool;
}

}  // namespace

namespace {
thread_local ScopedTaskRunner::RunFn t_runner = nullptr;
thread_local void* t_runner_ctx = nullptr;
thread_local bool t_in_runner_task = false;
}  // namespace

ScopedTaskRunner::ScopedTaskRunner(RunFn run, void* ctx) : prev_run_(t_runner), prev_ctx_(t_runner_ctx) {
  t_runner = run;
  t_runner_ctx = ctx;
}
ScopedTaskRunner::~ScopedTaskRunner() {
  t_runner = prev_run_;
  t_runner_ctx = prev_ctx_;
}

void ParallelFor(int64_t count, const std::function<void(int64_t)>& fn) {
  if (t_in_runner_task) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  if (t_runner == nullptr || count <= 1) return GlobalPool().Run(count, fn);
  // Tasks run on threads the runner owns: they are marked (nested calls run serially there) and
  // their first exception comes back here instead of unwinding through the runner's C frames.
  std::mutex error_mu;
  std::exception_ptr error;
  const std::function<void(int64_t)> guarded = [&](int64_t i) {
    const bool was = t_in_runner_task;
    t_in_runner_task = true;
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
    }
    t_in_runner_task = was;
  };
  t_runner(t_runner_ctx, count, guarded);
  if (error) std::rethrow_exception(error);
}

void SetNumThreads(int n) {
  constexpr int kMaxThreads = 1024;
  GlobalPool().Resize(n <= 0 ? HardwareThreads() : (n > kMaxThreads ? kMaxThreads : n));
}

int NumThreads() { return GlobalPool().size(); }

}  // namespace w4a8::cpu
