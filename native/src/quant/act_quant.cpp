// Per-token dynamic symmetric fake quantization of activations (int8 and FP8 E4M3FN): the kernels'
// numerics (act_quant_def.h), which the simulated ONNX export reproduces op for op.
#include <algorithm>
#include <cmath>

#include "linalg/parallel.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {
namespace {

// One row, with the one definition of per-token quantization (act_quant_def.h); the reference and
// the threaded path share it because it is already a single pass per element.
void FakeQuantRow(const float* x, int64_t k, ActFormat fmt, float* out, float* scale_out) {
  float amax = 0;
  for (int64_t i = 0; i < k; ++i) amax = AbsMaxStep(amax, x[i]);
  const TokenScale s = MakeTokenScale(amax, fmt == ActFormat::kInt8 ? kInt8Max : kE4M3Max);
  if (scale_out) *scale_out = s.scale;
  if (fmt == ActFormat::kInt8) {
    for (int64_t i = 0; i < k; ++i) out[i] = FakeQuantInt8(x[i], s);
  } else {
    for (int64_t i = 0; i < k; ++i) out[i] = FakeQuantE4M3(x[i], s);
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
