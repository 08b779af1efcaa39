// Int8 low-rank building blocks with AVX-512 (kron_internal.h defines the order they follow):
// int8 -> fp32 widening in registers, fp32 FMA. Compiled with AVX-512 flags (file name).
#include <immintrin.h>

// GCC 12 flags the undefined-vector idiom inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

inline __m512 Widen(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

}  // namespace

float Int8DotAvx512(const float* x, const int8_t* q, int32_t k) {
  // Lanes 0-15, 16-31, 32-47, 48-63 (kron_internal.h).
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int32_t i = 0;
  for (; i + 64 <= k; i += 64) {
    const __m512i bytes = _mm512_loadu_si512((const void*)(q + i));
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), Widen(_mm512_castsi512_si128(bytes)), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), Widen(_mm512_extracti32x4_epi32(bytes, 1)), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), Widen(_mm512_extracti32x4_epi32(bytes, 2)), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), Widen(_mm512_extracti32x4_epi32(bytes, 3)), a3);
  }
  // The tail: lanes past it get fma(0, 0, acc) = acc (the accumulators start at +0 and are never -0).
  __m512* parts[4] = {&a0, &a1, &a2, &a3};
  for (int part = 0; i + 16 * part < k && part < 4; ++part) {
    const int32_t at = i + 16 * part, left = k - at;
    const __mmask16 mask = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    *parts[part] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + at), Widen(_mm_maskz_loadu_epi8(mask, q + at)), *parts[part]);
  }
  const __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3));
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

void Int8RowsAddAvx512(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                       float* y, int32_t ldy) {
  // Row c outer: V streams row by row; each y element still sees c in order.
  for (int32_t t = 0; t < m; ++t) {
    float* yt = y + (size_t)t * ldy;
    for (int32_t c = 0; c < r; ++c) {
      const __m512 wv = _mm512_set1_ps(w[(size_t)t * ldw + c]);
      const int8_t* qc = q + (size_t)c * ldq;
      int32_t j = 0;
      for (; j + 64 <= cols; j += 64) {
        const __m512i bytes = _mm512_loadu_si512((const void*)(qc + j));
        _mm512_storeu_ps(yt + j, _mm512_fmadd_ps(wv, Widen(_mm512_castsi512_si128(bytes)), _mm512_loadu_ps(yt + j)));
        _mm512_storeu_ps(yt + j + 16, _mm512_fmadd_ps(wv, Widen(_mm512_extracti32x4_epi32(bytes, 1)), _mm512_loadu_ps(yt + j + 16)));
        _mm512_storeu_ps(yt + j + 32, _mm512_fmadd_ps(wv, Widen(_mm512_extracti32x4_epi32(bytes, 2)), _mm512_loadu_ps(yt + j + 32)));
        _mm512_storeu_ps(yt + j + 48, _mm512_fmadd_ps(wv, Widen(_mm512_extracti32x4_epi32(bytes, 3)), _mm512_loadu_ps(yt + j + 48)));
      }
      for (; j < cols; j += 16) {
        const __mmask16 mask = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1);
        const __m512 a = _mm512_fmadd_ps(wv, Widen(_mm_maskz_loadu_epi8(mask, qc + j)), _mm512_maskz_loadu_ps(mask, yt + j));
        _mm512_mask_storeu_ps(yt + j, mask, a);
      }
    }
  }
}

}  // namespace w4a8::cpu::kron
