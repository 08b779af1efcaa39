// Scalar activation quantization: the definition every vectorized variant reproduces bit for bit.
#include <cmath>
#include <cstring>

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {
namespace {

// max(v, lo) then min(v, hi) written as the x86 maxps/minps select (NaN -> lo), so the scalar and SIMD
// variants agree even on non-finite inputs.
inline float ClampLikeSimd(float v) {
  v = v > -127.0f ? v : -127.0f;
  return v < 127.0f ? v : 127.0f;
}

inline float AbsMax(const float* x, int32_t n) {
  float amax = 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    amax = amax > a ? amax : a;
  }
  return amax;
}

}  // namespace

void QuantizeRowsScalar(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                        const QuantizedActs& a) {
  for (int32_t m = m0; m < m1; ++m) {
    const float* xr = x + (size_t)m * k;
    int8_t* qr = a.q + (size_t)m * a.k_padded;
    const float row_amax = mode == ActQuant::kPerToken ? AbsMax(xr, k) : 0.0f;
    for (int32_t b = 0; b < a.blocks; ++b) {
      const int32_t k0 = b * group_size, k1 = k0 + group_size < k ? k0 + group_size : k;
      const float amax = mode == ActQuant::kPerToken ? row_amax : AbsMax(xr + k0, k1 - k0);
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int32_t i = k0; i < k1; ++i) {
        const int q = (int)std::nearbyint(ClampLikeSimd(xr[i] * inv));
        qr[i] = (int8_t)q;
        sum += q;
      }
      std::memset(qr + k1, 0, (size_t)(k0 + group_size - k1));
      a.scale[(size_t)m * a.blocks + b] = amax / 127.0f;
      a.sum[(size_t)m * a.blocks + b] = sum;
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
