// W4A16: the entry point over the dispatch table, the threaded drivers of the SIMD row kernels, the
// scalar reference, and the float64 ground truth used by tests and benchmarks.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/dispatch.h"
#include "w4a8/formats.h"
#include "thread_pool.h"
#include "w4a16_internal.h"
#include "w4a8/cpu_adapters.h"

namespace w4a8::cpu {
namespace {

bool ValidWeight(const QuantizedWeight& w) {
  const bool pow2 = w.group_size > 0 && (w.group_size & (w.group_size - 1)) == 0;
  return (w.format == WeightFormat::kInt4 || w.format == WeightFormat::kFp4E2M1) && w.n >= 1 && w.k >= 1 &&
         pow2 && w.group_size >= kMinGroupSize && w.group_size <= kMaxGroupSize && w.codes && w.scales;
}

bool ValidArgs(const GemmArgs& a) { return a.m >= 1 && a.x && a.y; }

// Splits `units` into about 4 tasks per thread (fewer for small problems): dynamic claiming then
// balances noisy cores while every output stays owned by exactly one task.
int64_t TaskCount(int64_t units) { return std::max<int64_t>(1, std::min<int64_t>(units, 4LL * NumThreads())); }

}  // namespace

Status GemmW4A16Reference(const QuantizedWeight& w, const GemmArgs& a) {
  if (!ValidWeight(w) || !ValidArgs(a)) return Status::kInvalidArgument;
  std::vector<float> row(w.k);
  for (int32_t n = 0; n < w.n; ++n) {
    for (int32_t k = 0; k < w.k; ++k) row[k] = DequantizeAt(w, n, k);
    for (int32_t t = 0; t < a.m; ++t) {
      const float* x = a.x + (size_t)t * w.k;
      double acc = 0;
      for (int32_t k = 0; k < w.k; ++k) acc += (double)x[k] * row[k];
      a.y[(size_t)t * w.n + n] = (float)acc + (a.bias ? a.bias[n] : 0.f);
    }
  }
  return Status::kOk;
}

Status GemmW4A16Packed(const PackedWeight& w, Isa isa, const GemmArgs& a) {
  if (!ValidArgs(a)) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const CpuPackedView& v = w.view();
  const int32_t kpad = v.k_padded, blocks = v.blocks_per_row, gs = v.group_size;
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  // Per calling thread, kept across calls: a decode step makes one call per layer.
  thread_local std::vector<float> scaled, sums;
  float mult[kCpuChunkK];  // 2^-shift of each k's nibble position in its chunk (exact)
  for (int32_t p = 0; p < kCpuChunkK; ++p) mult[w4a16::kChunkPositionK[p]] = std::ldexp(1.0f, -w4a16::kChunkPositionShift[p]);
  scaled.resize((size_t)a.m * kpad);
  sums.resize((size_t)a.m * blocks);
  for (int32_t t = 0; t < a.m; ++t) {
    const float* x = a.x + (size_t)t * v.k;
    float* xs = scaled.data() + (size_t)t * kpad;
    for (int32_t k = 0; k < kpad; ++k) {
      const float xk = k < v.k ? x[k] : 0.f;
      // int4 kernels read q * 2^shift (w4a16_internal.h); a product too small to be a normal float
      // is dropped (far below the sum's rounding) rather than handed to the FMA as a denormal.
      const float s = fp4 ? xk : xk * mult[k % kCpuChunkK];
      xs[k] = std::fabs(s) < std::numeric_limits<float>::min() ? 0.f : s;
    }
    for (int32_t b = 0; b < blocks; ++b) {
      float sum = 0.f;
      for (int32_t k = b * gs; k < std::min(v.k, (b + 1) * gs); ++k) sum += x[k];
      sums[(size_t)t * blocks + b] = sum;
    }
  }
  const w4a16::PackedActs acts{a.x, scaled.data(), sums.data()};
  const W4A16PackedFn panels = DispatchFor(isa).w4a16_packed;
  const int64_t tasks = TaskCount(v.n_panels);
  ParallelFor(tasks, [&](int64_t i) {
    const int32_t p0 = (int32_t)(v.n_panels * i / tasks), p1 = (int32_t)(v.n_panels * (i + 1) / tasks);
    if (p0 < p1) panels(v, acts, a.m, a.bias, a.y, p0, p1);
  });
  return Status::kOk;
}

Status GemmW4A16(const QuantizedWeight& w, Isa isa, const GemmArgs& a) {
  if (!ValidWeight(w) || !ValidArgs(a)) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  return DispatchFor(isa).w4a16(w, a);
}

namespace w4a16 {
namespace {

// Rows split into tasks of whole kRowAlign blocks; each task runs one ISA's row kernel.
Status GemmRows(bool (*rows)(const QuantizedWeight&, const GemmArgs&, int32_t, int32_t), const QuantizedWeight& w,
                const GemmArgs& a) {
  const int64_t blocks = (w.n + kRowAlign - 1) / kRowAlign;
  const int64_t tasks = TaskCount(blocks);
  std::vector<char> ok(tasks, 1);
  ParallelFor(tasks, [&](int64_t i) {
    const int32_t n0 = (int32_t)(blocks * i / tasks) * kRowAlign;
    const int32_t n1 = std::min<int32_t>(w.n, (int32_t)(blocks * (i + 1) / tasks) * kRowAlign);
    if (n0 < n1) ok[i] = rows(w, a, n0, n1) ? 1 : 0;
  });
  return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; }) ? Status::kOk : Status::kOutOfMemory;
}

}  // namespace

Status GemmAvx512(const QuantizedWeight& w, const GemmArgs& a) { return GemmRows(RowsAvx512, w, a); }

void PackedPanelsScalar(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  for (int32_t n = p0 * kCpuPanelN; n < std::min(v.n, p1 * kCpuPanelN); ++n)
    for (int32_t t = 0; t < m; ++t) {
      const float* x = acts.x + (size_t)t * v.k;
      double acc = 0;
      for (int32_t k = 0; k < v.k; ++k) acc += (double)x[k] * CpuPackedDequantizeAt(v, n, k);
      y[(size_t)t * v.n + n] = (float)acc + (bias ? bias[n] : 0.f);
    }
}
Status GemmAvx2(const QuantizedWeight& w, const GemmArgs& a) { return GemmRows(RowsAvx2, w, a); }

}  // namespace w4a16

Status GemmDequantizedF64(const QuantizedWeight& w, int32_t m, const float* x, double* y) {
  if (!ValidWeight(w) || m < 1 || !x || !y) return Status::kInvalidArgument;
  const int64_t tasks = TaskCount(w.n);
  ParallelFor(tasks, [&](int64_t i) {
    std::vector<double> row(w.k);
    for (int32_t n = (int32_t)(w.n * i / tasks); n < (int32_t)(w.n * (i + 1) / tasks); ++n) {
      for (int32_t k = 0; k < w.k; ++k) row[k] = DequantizeAt(w, n, k);
      for (int32_t t = 0; t < m; ++t) {
        const float* xt = x + (size_t)t * w.k;
        double acc = 0;
        for (int32_t k = 0; k < w.k; ++k) acc += (double)xt[k] * row[k];
        y[(size_t)t * w.n + n] = acc;
      }
    }
  });
  return Status::kOk;
}

Status DequantizeToKN(const QuantizedWeight& w, float* out) {
  if (!ValidWeight(w) || !out) return Status::kInvalidArgument;
  // Each task owns a band of k rows of `out`, written contiguously.
  const int64_t tasks = TaskCount(w.k);
  ParallelFor(tasks, [&](int64_t i) {
    for (int32_t k = (int32_t)(w.k * i / tasks); k < (int32_t)(w.k * (i + 1) / tasks); ++k)
      for (int32_t n = 0; n < w.n; ++n) out[(size_t)k * w.n + n] = DequantizeAt(w, n, k);
  });
  return Status::kOk;
}

}  // namespace w4a8::cpu
