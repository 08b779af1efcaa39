// The low-rank correction with int8 factors (formats.h "Int8Rows"; cpu_adapters.h): the decode path
// streams the int8 rows (a quarter of the fp32 bytes), the GEMM path dequantizes once per call and
// runs LowRankAdd. Also the scalar building blocks (the order every ISA follows), the float64
// reference twin and the row quantizer.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.h"
#include "kron_internal.h"
#include "thread_pool.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/formats.h"

namespace w4a8::cpu {
namespace {

bool Valid(const LowRankInt8Term& lr) {
  return lr.k >= 1 && lr.r >= 1 && lr.n >= 1 && lr.ut && lr.us && lr.v && lr.vs;
}

// From this many rows the dequantized factors go through LowRankAdd's GEMM path.
constexpr int32_t kGemmRows = 8;

}  // namespace

float kron::Int8DotScalar(const float* x, const int8_t* q, int32_t k) {
  float lane[64] = {};
  for (int32_t i = 0; i < k; ++i) lane[i % 64] = std::fma(x[i], (float)q[i], lane[i % 64]);
  for (int h = 32; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l) lane[l] += lane[l + h];
  return lane[0];
}

void kron::Int8RowsAddScalar(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q,
                             int32_t ldq, float* y, int32_t ldy) {
  for (int32_t t = 0; t < m; ++t)
    for (int32_t c = 0; c < r; ++c)
      for (int32_t j = 0; j < cols; ++j)
        y[(size_t)t * ldy + j] = std::fma(w[(size_t)t * ldw + c], (float)q[(size_t)c * ldq + j], y[(size_t)t * ldy + j]);
}

Status QuantizeInt8Rows(const float* src, int32_t rows, int32_t cols, int8_t* q, float* scales) {
  if (!src || !q || !scales || rows < 1 || cols < 1) return Status::kInvalidArgument;
  for (int32_t i = 0; i < rows; ++i) {
    const float* row = src + (size_t)i * cols;
    float amax = 0.f;
    for (int32_t j = 0; j < cols; ++j) {
      if (!std::isfinite(row[j])) return Status::kNumericalError;
      amax = AbsMaxStep(amax, row[j]);
    }
    const TokenScale s = MakeTokenScale(amax, kInt8Max);
    scales[i] = s.scale;
    for (int32_t j = 0; j < cols; ++j) q[(size_t)i * cols + j] = QuantizeInt8(row[j], s.inverse);
  }
  return Status::kOk;
}

Status LowRankAddInt8(const LowRankInt8Term& lr, int32_t m, const float* x, float* y, Isa isa) {
  if (!Valid(lr) || m < 1 || !x || !y) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const int32_t k = lr.k, r = lr.r, n = lr.n;
  if (m >= kGemmRows) {
    // Dequantize once (r * (k + n) values, small next to m * r * (k + n) multiply-adds), then GEMMs.
    std::vector<float> u((size_t)k * r), v((size_t)r * n);
    ParallelFor(r, [&](int64_t c) {
      for (int32_t i = 0; i < k; ++i) u[(size_t)i * r + c] = Int8RowValue(lr.ut[(size_t)c * k + i], lr.us[c]);
      for (int32_t j = 0; j < n; ++j) v[(size_t)c * n + j] = Int8RowValue(lr.v[(size_t)c * n + j], lr.vs[c]);
    });
    return LowRankAdd(LowRankTerm{k, r, n, u.data(), v.data()}, m, x, y, isa);
  }
  const CpuDispatch& d = DispatchFor(isa);
  // w[t][c] = us[c] * dot(x[t], ut[c]) * vs[c]: tasks over c read whole rows of ut.
  std::vector<float> w((size_t)m * r);
  // A small term (a LoRA of rank 8 on a 4096-wide layer) runs on this thread: waking the pool
  // would cost more than the work.
  const int64_t threads = (double)m * r * (k + n) < (1 << 20) ? 1 : NumThreads();
  const int64_t c_tasks = threads == 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(r, 4 * threads));
  ParallelFor(c_tasks, [&](int64_t task) {
    const int32_t c0 = (int32_t)(r * task / c_tasks), c1 = (int32_t)(r * (task + 1) / c_tasks);
    for (int32_t c = c0; c < c1; ++c)
      for (int32_t t = 0; t < m; ++t)
        w[(size_t)t * r + c] = lr.us[c] * d.int8_dot(x + (size_t)t * k, lr.ut + (size_t)c * k, k) * lr.vs[c];
  });
  // y += w V: a task per thread over a wide strip of columns, reading each row's strip in order
  // (long contiguous runs of V; y's strip stays in cache across the rows).
  const int64_t strips = (n + 63) / 64;
  const int64_t y_tasks = std::max<int64_t>(1, std::min<int64_t>(strips, threads));
  ParallelFor(y_tasks, [&](int64_t task) {
    const int32_t j0 = (int32_t)std::min<int64_t>(n, strips * task / y_tasks * 64);
    const int32_t j1 = (int32_t)std::min<int64_t>(n, strips * (task + 1) / y_tasks * 64);
    if (j1 > j0) d.int8_rows_add(m, j1 - j0, r, w.data(), r, lr.v + j0, n, y + j0, n);
  });
  return Status::kOk;
}

Status LowRankAddInt8Reference(const LowRankInt8Term& lr, int32_t m, const float* x, float* y) {
  if (!Valid(lr) || m < 1 || !x || !y) return Status::kInvalidArgument;
  std::vector<double> t((size_t)lr.r);
  for (int32_t i = 0; i < m; ++i) {
    const float* xi = x + (size_t)i * lr.k;
    for (int32_t c = 0; c < lr.r; ++c) {
      double s = 0;
      for (int32_t kk = 0; kk < lr.k; ++kk) s += (double)xi[kk] * Int8RowValue(lr.ut[(size_t)c * lr.k + kk], lr.us[c]);
      t[c] = s;
    }
    float* yi = y + (size_t)i * lr.n;
    for (int32_t j = 0; j < lr.n; ++j) {
      double s = 0;
      for (int32_t c = 0; c < lr.r; ++c) s += t[c] * Int8RowValue(lr.v[(size_t)c * lr.n + j], lr.vs[c]);
      yi[j] = (float)((double)yi[j] + s);
    }
  }
  return Status::kOk;
}

}  // namespace w4a8::cpu
