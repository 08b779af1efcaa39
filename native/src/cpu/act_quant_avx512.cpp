// AVX512 activation quantization: the operations of QuantizeInt8 (act_quant_def.h) on 16 lanes (IEEE
// multiply, maxps/minps clamp, round-to-nearest-even conversion under the default MXCSR), hence the
// same bytes as QuantizeRowsScalar; the scales come from MakeTokenScale itself.
#include <immintrin.h>

// GCC 12 reports false 'maybe uninitialized' warnings inside its own AVX512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cstring>

#include "cpu/w4a8_internal.h"
#include "w4a8/act_quant_def.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline __mmask16 TailMask(int32_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

inline float AbsMax(const float* x, int32_t n) {
  __m512 amax = _mm512_setzero_ps();
  for (int32_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(TailMask(n - i), x + i);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
  }
  return _mm512_reduce_max_ps(amax);
}

}  // namespace

void QuantizeRowsAvx512(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                        const QuantizedActs& a) {
  const __m512 lo = _mm512_set1_ps(-kInt8Max), hi = _mm512_set1_ps(kInt8Max);
  for (int32_t m = m0; m < m1; ++m) {
    const float* xr = x + (size_t)m * k;
    int8_t* qr = a.q + (size_t)m * a.k_padded;
    const float row_amax = mode == ActQuant::kPerToken ? AbsMax(xr, k) : 0.0f;
    for (int32_t b = 0; b < a.blocks; ++b) {
      const int32_t k0 = b * group_size, k1 = k0 + group_size < k ? k0 + group_size : k;
      const float amax = mode == ActQuant::kPerToken ? row_amax : AbsMax(xr + k0, k1 - k0);
      const TokenScale ts = MakeTokenScale(amax, kInt8Max);
      const __m512 inv = _mm512_set1_ps(ts.inverse);
      __m512i sum = _mm512_setzero_si512();
      for (int32_t i = k0; i < k1; i += 16) {
        const __mmask16 mask = TailMask(k1 - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, xr + i), inv);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        const __m512i q = _mm512_maskz_mov_epi32(mask, _mm512_cvtps_epi32(v));
        sum = _mm512_add_epi32(sum, q);
        _mm512_mask_cvtepi32_storeu_epi8(qr + i, mask, q);
      }
      std::memset(qr + k1, 0, (size_t)(k0 + group_size - k1));
      a.scale[(size_t)m * a.blocks + b] = ts.scale;
      a.sum[(size_t)m * a.blocks + b] = _mm512_reduce_add_epi32(sum);
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
