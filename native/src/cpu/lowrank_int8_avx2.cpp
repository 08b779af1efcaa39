// Int8 low-rank building blocks with AVX2 + FMA (kron_internal.h defines the order they follow):
// the 16 dot lanes are two 8-lane registers. Compiled with AVX2 flags (file name).
#include <immintrin.h>

#include <cmath>

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

inline __m256 Widen8(const int8_t* q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)q))); }

}  // namespace

float Int8DotAvx2(const float* x, const int8_t* q, int32_t k) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 16 <= k; i += 16) {
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), Widen8(q + i), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), Widen8(q + i + 8), hi);
  }
  if (i < k) {
    alignas(32) float lane[16];
    _mm256_store_ps(lane, lo);
    _mm256_store_ps(lane + 8, hi);
    for (int32_t l = 0; i + l < k; ++l) lane[l] = std::fma(x[i + l], (float)q[i + l], lane[l]);
    lo = _mm256_load_ps(lane);
    hi = _mm256_load_ps(lane + 8);
  }
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

void Int8RowsAddAvx2(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                     float* y, int32_t ldy) {
  for (int32_t t = 0; t < m; ++t) {
    float* yt = y + (size_t)t * ldy;
    const float* wt = w + (size_t)t * ldw;
    int32_t j = 0;
    for (; j + 32 <= cols; j += 32) {
      __m256 a0 = _mm256_loadu_ps(yt + j), a1 = _mm256_loadu_ps(yt + j + 8);
      __m256 a2 = _mm256_loadu_ps(yt + j + 16), a3 = _mm256_loadu_ps(yt + j + 24);
      for (int32_t c = 0; c < r; ++c) {
        const __m256 wv = _mm256_set1_ps(wt[c]);
        const int8_t* qc = q + (size_t)c * ldq + j;
        a0 = _mm256_fmadd_ps(wv, Widen8(qc), a0);
        a1 = _mm256_fmadd_ps(wv, Widen8(qc + 8), a1);
        a2 = _mm256_fmadd_ps(wv, Widen8(qc + 16), a2);
        a3 = _mm256_fmadd_ps(wv, Widen8(qc + 24), a3);
      }
      _mm256_storeu_ps(yt + j, a0);
      _mm256_storeu_ps(yt + j + 8, a1);
      _mm256_storeu_ps(yt + j + 16, a2);
      _mm256_storeu_ps(yt + j + 24, a3);
    }
    for (; j + 8 <= cols; j += 8) {
      __m256 a = _mm256_loadu_ps(yt + j);
      for (int32_t c = 0; c < r; ++c) a = _mm256_fmadd_ps(_mm256_set1_ps(wt[c]), Widen8(q + (size_t)c * ldq + j), a);
      _mm256_storeu_ps(yt + j, a);
    }
    for (; j < cols; ++j) {
      float acc = yt[j];
      for (int32_t c = 0; c < r; ++c) acc = std::fma(wt[c], (float)q[(size_t)c * ldq + j], acc);
      yt[j] = acc;
    }
  }
}

}  // namespace w4a8::cpu::kron
