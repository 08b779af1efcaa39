// AVX2 activation quantization: the operations of QuantizeInt8 (act_quant_def.h) on 8 lanes (IEEE
// multiply, maxps/minps clamp, round-to-nearest-even cvtps2dq under the default MXCSR), hence the
// same bytes as QuantizeRowsScalar; the scales come from MakeTokenScale itself.
#include <immintrin.h>

#include <cstring>

#include "cpu/w4a8_internal.h"
#include "w4a8/act_quant_def.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline __m256i TailMask(int32_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float AbsMax(const float* x, int32_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int32_t i = 0; i < n; i += 8) {
    const __m256 v = _mm256_maskload_ps(x + i, TailMask(n - i));  // masked-off lanes read as 0
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, amax);
  float m = lanes[0];
  for (int i = 1; i < 8; ++i) m = m > lanes[i] ? m : lanes[i];
  return m;
}

}  // namespace

void QuantizeRowsAvx2(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                      const QuantizedActs& a) {
  const __m256 lo = _mm256_set1_ps(-kInt8Max), hi = _mm256_set1_ps(kInt8Max);
  for (int32_t m = m0; m < m1; ++m) {
    const float* xr = x + (size_t)m * k;
    int8_t* qr = a.q + (size_t)m * a.k_padded;
    const float row_amax = mode == ActQuant::kPerToken ? AbsMax(xr, k) : 0.0f;
    for (int32_t b = 0; b < a.blocks; ++b) {
      const int32_t k0 = b * group_size, k1 = k0 + group_size < k ? k0 + group_size : k;
      const float amax = mode == ActQuant::kPerToken ? row_amax : AbsMax(xr + k0, k1 - k0);
      const TokenScale ts = MakeTokenScale(amax, kInt8Max);
      const __m256 inv = _mm256_set1_ps(ts.inverse);
      __m256i sum = _mm256_setzero_si256();
      for (int32_t i = k0; i < k1; i += 8) {
        const __m256i mask = TailMask(k1 - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(xr + i, mask), inv);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        const __m256i q = _mm256_and_si256(_mm256_cvtps_epi32(v), mask);
        sum = _mm256_add_epi32(sum, q);
        alignas(32) int32_t lanes[8];
        _mm256_store_si256((__m256i*)lanes, q);
        const int32_t count = k1 - i < 8 ? k1 - i : 8;
        for (int32_t j = 0; j < count; ++j) qr[i + j] = (int8_t)lanes[j];
      }
      std::memset(qr + k1, 0, (size_t)(k0 + group_size - k1));
      alignas(32) int32_t partial[8];
      _mm256_store_si256((__m256i*)partial, sum);
      int32_t total = 0;
      for (int j = 0; j < 8; ++j) total += partial[j];
      a.scale[(size_t)m * a.blocks + b] = ts.scale;
      a.sum[(size_t)m * a.blocks + b] = total;
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
