// Persistent pool: workers spin briefly on a generation counter (a GEMV call lasts ~0.1-1 ms, so a
// condition-variable wake-up per call would cost a visible fraction), then sleep on a condition variable.
#include "cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "w4a8/cpu_kernels.h"

namespace w4a8::cpu {
namespace {

int HardwareThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)n;
}

class Pool {
 public:
  ~Pool() { Resize(1); }

  int size() {
    std::lock_guard<std::mutex> lock(busy_);
    return (int)workers_.size() + 1;
  }

  void Resize(int threads) {
    std::lock_guard<std::mutex> lock(busy_);
    StopWorkers();
    stop_ = false;
    // A worker must start from the generation current NOW: a job published before the thread gets
    // to run would otherwise be mistaken for an old one and never be joined.
    const uint64_t current = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, current] { WorkerLoop(current); });
  }

  void Run(int64_t count, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || workers_.empty() || count <= 1) {
      for (int64_t i = 0; i < count; ++i) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      count_ = count;
      next_.store(0, std::memory_order_relaxed);
      active_.store((int)workers_.size(), std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    Drain();
    // Wait for the workers to leave this job (they hold no task afterwards), spinning first.
    for (int spins = 0; active_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins > 1000) std::this_thread::yield();
    }
  }

 private:
  void Drain() {
    for (;;) {
      const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= count_) break;
      (*fn_)(i);
    }
  }

  void WorkerLoop(uint64_t seen) {
    for (;;) {
      // Brief spin: the next GEMV call usually arrives within microseconds.
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (generation_.load(std::memory_order_acquire) == seen && !stop_flag_.load(std::memory_order_acquire) &&
             std::chrono::steady_clock::now() < spin_until) {
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_acquire);
      }
      Drain();
      active_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      stop_flag_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_flag_.store(false, std::memory_order_release);
  }

  std::mutex busy_;  // held by the one caller that owns the workers for a job
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  std::atomic<bool> stop_flag_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  int64_t count_ = 0;
  const std::function<void(int64_t)>* fn_ = nullptr;
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

void ParallelFor(int64_t count, const std::function<void(int64_t)>& fn) { GlobalPool().Run(count, fn); }

void SetNumThreads(int n) { GlobalPool().Resize(n <= 0 ? HardwareThreads() : n); }

int NumThreads() { return GlobalPool().size(); }

}  // namespace w4a8::cpu
