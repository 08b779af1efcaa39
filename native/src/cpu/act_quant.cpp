// Scalar activation quantization of the CPU kernels: act_quant_def.h applied per (token, K-group);
// every vectorized variant reproduces it bit for bit.
#include <cmath>
#include <cstring>

#include "cpu/w4a8_internal.h"
#include "w4a8/act_quant_def.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline float AbsMax(const float* x, int32_t n) {
  float amax = 0.0f;
  for (int32_t i = 0; i < n; ++i) amax = AbsMaxStep(amax, x[i]);
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
      const TokenScale ts = MakeTokenScale(amax, kInt8Max);
      int32_t sum = 0;
      for (int32_t i = k0; i < k1; ++i) {
        const int8_t q = QuantizeInt8(xr[i], ts.inverse);
        qr[i] = q;
        sum += q;
      }
      std::memset(qr + k1, 0, (size_t)(k0 + group_size - k1));
      a.scale[(size_t)m * a.blocks + b] = ts.scale;
      a.sum[(size_t)m * a.blocks + b] = sum;
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
