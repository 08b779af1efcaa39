// Per-token dynamic symmetric fake quantization of activations (int8 and FP8 E4M3FN). These are
// the numerics the simulated ONNX export reproduces with QuantizeLinear / Cast(FLOAT8E4M3FN).
#include <algorithm>
#include <cmath>

#include "linalg/parallel.h"
#include "quant/fp8_e4m3.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {
namespace {

// One row; the reference and the fast path share it because it is already a single pass per
// element (the compiler vectorises the absmax and int8 loops).
void FakeQuantRow(const float* x, int64_t k, ActFormat fmt, float* out, float* scale_out) {
  float absmax = 0;
  for (int64_t i = 0; i < k; ++i) absmax = std::max(absmax, std::fabs(x[i]));
  const float qmax = fmt == ActFormat::kInt8 ? 127.0f : 448.0f;
  const float scale = absmax / qmax;
  if (scale_out) *scale_out = scale;
  if (!(scale > 0)) {
    for (int64_t i = 0; i < k; ++i) out[i] = 0.0f * x[i];
    return;
  }
  if (fmt == ActFormat::kInt8) {
    for (int64_t i = 0; i < k; ++i) {
      const float q = std::min(127.0f, std::max(-128.0f, std::nearbyint(x[i] / scale)));
      out[i] = q * scale;
    }
  } else {
    for (int64_t i = 0; i < k; ++i) out[i] = quant::E4M3ToFloat(quant::FloatToE4M3(x[i] / scale)) * scale;
  }
}

Status Check(const float* x, int64_t m, int64_t k, ActFormat fmt, const float* out) {
  if (m < 0 || k <= 0 || (m > 0 && (!x || !out))) return Status::kInvalidArgument;
  if (fmt != ActFormat::kNone && fmt != ActFormat::kInt8 && fmt != ActFormat::kFp8E4M3) return Status::kInvalidArgument;
  return Status::kOk;
}

}  // namespace

Status FakeQuantActivationsRef(const float* x, int64_t m, int64_t k, ActFormat fmt, float* out, float* row_scales) {
  if (Status s = Check(x, m, k, fmt, out); s != Status::kOk) return s;
  for (int64_t r = 0; r < m; ++r) {
    if (fmt == ActFormat::kNone) {
      std::copy(x + r * k, x + (r + 1) * k, out + r * k);
      if (row_scales) row_scales[r] = 1.0f;
      continue;
    }
    FakeQuantRow(x + r * k, k, fmt, out + r * k, row_scales ? row_scales + r : nullptr);
  }
  return Status::kOk;
}

static Status FakeQuantActivationsUnguarded(const float* x, int64_t m, int64_t k, ActFormat fmt, float* out, float* row_scales,
                                            int threads) {
  if (Status s = Check(x, m, k, fmt, out); s != Status::kOk) return s;
  const int t = (double)m * k < 1e5 ? 1 : ChunkCount(threads);
  ParallelRanges(t, m, 1, [&](int64_t r0, int64_t r1) {
    FakeQuantActivationsRef(x + r0 * k, r1 - r0, k, fmt, out + r0 * k, row_scales ? row_scales + r0 : nullptr);
  });
  return Status::kOk;
}

Status FakeQuantActivations(const float* x, int64_t m, int64_t k, ActFormat fmt, float* out, float* row_scales,
                            int threads) {
  return StatusFromExceptions([&] { return FakeQuantActivationsUnguarded(x, m, k, fmt, out, row_scales, threads); });
}

}  // namespace w4a8
