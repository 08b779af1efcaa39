// Relative layer output error ||X W - Qa(X) W'||^2 / ||X W||^2, by row chunks of X so that the
// products never need more than chunk x N floats, with the packed GEMM doing the work.
#include <algorithm>
#include <cmath>
#include <vector>

#include "linalg/parallel.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {

static Status LayerOutputErrorUnguarded(const float* x, int64_t s, int32_t k, const float* input_scale, const float* w,
                                        const float* w_dequantized, int32_t n, ActFormat act, double* relative_error, int threads) {
  if (s <= 0 || k <= 0 || n <= 0 || !x || !w || !w_dequantized || !relative_error) return Status::kInvalidArgument;
  if (input_scale)
    for (int32_t i = 0; i < k; ++i)
      if (!(input_scale[i] > 0) || !std::isfinite(input_scale[i])) return Status::kInvalidArgument;
  const int t = ChunkCount(threads);
  const int64_t chunk = 512;
  std::vector<float> y((size_t)std::min(chunk, s) * n), yq(y.size()), xq;
  std::vector<float> delta, xs;
  if (input_scale) {
    // The quantized side reads X diag(1/s): always the two-product path, on a scaled copy of each chunk.
    xs.resize((size_t)std::min(chunk, s) * k);
    xq.resize(xs.size());
  } else if (act == ActFormat::kNone) {
    // X W - X W' = X (W - W'): one product instead of two.
    delta.resize((size_t)k * n);
    for (size_t i = 0; i < delta.size(); ++i) delta[i] = w[i] - w_dequantized[i];
  } else {
    xq.resize((size_t)std::min(chunk, s) * k);
  }
  double num = 0, den = 0;
  for (int64_t r0 = 0; r0 < s; r0 += chunk) {
    const int64_t rows = std::min(chunk, s - r0);
    const float* xc = x + r0 * k;
    GemmF32(false, false, rows, n, k, 1.0f, xc, k, w, n, 0.0f, y.data(), n, t);
    if (input_scale) {
      for (int64_t r = 0; r < rows; ++r)
        for (int32_t i = 0; i < k; ++i) xs[r * k + i] = xc[r * k + i] / input_scale[i];
      const float* xin = xs.data();
      if (act != ActFormat::kNone) {
        Status st = FakeQuantActivations(xs.data(), rows, k, act, xq.data(), nullptr, t);
        if (st != Status::kOk) return st;
        xin = xq.data();
      }
      GemmF32(false, false, rows, n, k, 1.0f, xin, k, w_dequantized, n, 0.0f, yq.data(), n, t);
      for (int64_t i = 0; i < rows * n; ++i) {
        const double d = (double)y[i] - yq[i];
        den += (double)y[i] * y[i];
        num += d * d;
      }
    } else if (act == ActFormat::kNone) {
      GemmF32(false, false, rows, n, k, 1.0f, xc, k, delta.data(), n, 0.0f, yq.data(), n, t);
      for (int64_t i = 0; i < rows * n; ++i) {
        den += (double)y[i] * y[i];
        num += (double)yq[i] * yq[i];
      }
    } else {
      Status st = FakeQuantActivations(xc, rows, k, act, xq.data(), nullptr, t);
      if (st != Status::kOk) return st;
      GemmF32(false, false, rows, n, k, 1.0f, xq.data(), k, w_dequantized, n, 0.0f, yq.data(), n, t);
      for (int64_t i = 0; i < rows * n; ++i) {
        const double d = (double)y[i] - yq[i];
        den += (double)y[i] * y[i];
        num += d * d;
      }
    }
  }
  *relative_error = den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
  return Status::kOk;
}

Status LayerOutputError(const float* x, int64_t s, int32_t k, const float* w, const float* w_dequantized, int32_t n,
                        ActFormat act, double* relative_error, int threads) {
  return StatusFromExceptions([&] { return LayerOutputErrorUnguarded(x, s, k, nullptr, w, w_dequantized, n, act, relative_error, threads); });
}

Status LayerOutputErrorScaled(const float* x, int64_t s, int32_t k, const float* input_scale, const float* w,
                              const float* w_dequantized, int32_t n, ActFormat act, double* relative_error, int threads) {
  return StatusFromExceptions(
      [&] { return LayerOutputErrorUnguarded(x, s, k, input_scale, w, w_dequantized, n, act, relative_error, threads); });
}

}  // namespace w4a8
