// The scalar reference twin of GemmW4A8: reads the canonical layout directly and spells out the numerics
// of cpu_kernels.h; every optimized path is tested for bitwise equality with it.
#include <cmath>
#include <new>
#include <vector>

#include "cpu/w4a8_internal.h"
#include "w4a8/cpu_kernels.h"

namespace w4a8::cpu {

namespace {

Status ReferenceImpl(const QuantizedWeight& w, const GemmArgs& a);

}  // namespace

Status GemmW4A8Reference(const QuantizedWeight& w, const GemmArgs& a) {
  try {
    return ReferenceImpl(w, a);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
}

namespace {

Status ReferenceImpl(const QuantizedWeight& w, const GemmArgs& a) {
  if (ValidateQuantizedWeight(w) != Status::kOk) return Status::kInvalidArgument;
  if (a.m <= 0 || !a.x || !a.y) return Status::kInvalidArgument;
  if (a.act != ActQuant::kPerTokenPerGroup && a.act != ActQuant::kPerToken) return Status::kInvalidArgument;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  const int32_t k_padded = blocks * w.group_size;
  std::vector<int8_t> q((size_t)a.m * k_padded);
  std::vector<float> x_scale((size_t)a.m * blocks);
  std::vector<int32_t> x_sum((size_t)a.m * blocks);
  const w4a8k::QuantizedActs acts{a.m, a.m, k_padded, blocks, q.data(), x_scale.data(), x_sum.data()};
  w4a8k::QuantizeRowsScalar(a.x, w.k, w.group_size, a.act, 0, a.m, acts);

  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  for (int32_t m = 0; m < a.m; ++m) {
    for (int32_t n = 0; n < w.n; ++n) {
      float acc = 0.0f;
      for (int32_t b = 0; b < blocks; ++b) {
        const int zero_point = fp4 ? 0 : ZeroPointAt(w.zero_points, blocks, n, b);
        int32_t isum = 0;
        for (int32_t k = b * w.group_size; k < (b + 1) * w.group_size && k < w.k; ++k) {
          const int code = CodeAt(w.codes, w.k, w.group_size, n, k);
          const int weight = fp4 ? Fp4E2M1TimesTwo(code) : code - zero_point;
          isum += (int32_t)q[(size_t)m * k_padded + k] * weight;
        }
        const float w_scale = fp4 ? 0.5f * w.scales[(size_t)n * blocks + b] : w.scales[(size_t)n * blocks + b];
        acc = std::fma((float)isum, x_scale[(size_t)m * blocks + b] * w_scale, acc);
      }
      a.y[(size_t)m * w.n + n] = a.bias ? acc + a.bias[n] : acc;
    }
  }
  return Status::kOk;
}

}  // namespace

}  // namespace w4a8::cpu
