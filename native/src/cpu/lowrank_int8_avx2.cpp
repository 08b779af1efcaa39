// Int8 low-rank building blocks with AVX2 + FMA (kron_internal.h defines the order they follow):
// the 64 dot lanes are eight 8-lane registers. Compiled with AVX2 flags (file name).
#include <immintrin.h>

#include <cmath>

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

inline __m256 Widen8(const int8_t* q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)q))); }

}  // namespace

float Int8DotAvx2(const float* x, const int8_t* q, int32_t k) {
  // acc[j] holds lanes 8j .. 8j + 7 of the 64 (kron_internal.h).
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 64 <= k; i += 64)
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), Widen8(q + i + 8 * j), acc[j]);
  if (i < k) {
    alignas(32) float lane[64];
    for (int j = 0; j < 8; ++j) _mm256_store_ps(lane + 8 * j, acc[j]);
    for (int32_t l = 0; i + l < k; ++l) lane[l] = std::fma(x[i + l], (float)q[i + l], lane[l]);
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_load_ps(lane + 8 * j);
  }
  // l += l + 32, then l += l + 16, then l += l + 8: lanes 0-7 in one register.
  for (int j = 0; j < 4; ++j) acc[j] = _mm256_add_ps(acc[j], acc[j + 4]);
  for (int j = 0; j < 2; ++j) acc[j] = _mm256_add_ps(acc[j], acc[j + 2]);
  const __m256 s8 = _mm256_add_ps(acc[0], acc[1]);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

void Int8RowsAddAvx2(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                     float* y, int32_t ldy) {
  // Row c outer: V streams row by row; each y element still sees c in order.
  for (int32_t t = 0; t < m; ++t) {
    float* yt = y + (size_t)t * ldy;
    for (int32_t c = 0; c < r; ++c) {
      const float wc = w[(size_t)t * ldw + c];
      const __m256 wv = _mm256_set1_ps(wc);
      const int8_t* qc = q + (size_t)c * ldq;
      int32_t j = 0;
      for (; j + 32 <= cols; j += 32)
        for (int h = 0; h < 32; h += 8) _mm256_storeu_ps(yt + j + h, _mm256_fmadd_ps(wv, Widen8(qc + j + h), _mm256_loadu_ps(yt + j + h)));
      for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(yt + j, _mm256_fmadd_ps(wv, Widen8(qc + j), _mm256_loadu_ps(yt + j)));
      for (; j < cols; ++j) yt[j] = std::fma(wc, (float)qc[j], yt[j]);
    }
  }
}

}  // namespace w4a8::cpu::kron
