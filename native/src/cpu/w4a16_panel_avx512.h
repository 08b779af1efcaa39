// The register tile of the AVX-512 W4A16 kernels for larger M, shared by the canonical path
// (w4a16_avx512.cpp) and the packed one (w4a16_packed_avx512.cpp): for kPanelRows output rows and
// kChunkK k at a time, the weights are first dequantized and transposed into wt [k][kPanelRows]
// (32 KiB, stays in L1); each token's x[k] is broadcast against two vectors of 16 rows, so a 12-token
// tile keeps 24 accumulators and does 24 FMAs per 14 loads. Include only from *_avx512.cpp files.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace w4a8::cpu::w4a16::avx512 {

constexpr int32_t kPanelRows = 32;
constexpr int32_t kChunkK = 256;  // a multiple of every group size

inline __mmask16 Lanes(int32_t count) {
  return count >= 16 ? (__mmask16)0xffff : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

// y[t][0 .. 32) += x[t][0 .. kc) wt for MT tokens (x rows K apart, y rows n apart; m0, m1 mask the rows).
template <int MT>
inline void PanelTile(const float* wt, int32_t kc, const float* x, int32_t K, float* y, int32_t n, __mmask16 m0, __mmask16 m1) {
  __m512 acc[MT][2];
  for (int t = 0; t < MT; ++t) {
    acc[t][0] = _mm512_maskz_loadu_ps(m0, y + (size_t)t * n);
    acc[t][1] = _mm512_maskz_loadu_ps(m1, y + (size_t)t * n + 16);
  }
  for (int32_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_load_ps(wt + (size_t)k * kPanelRows);
    const __m512 w1 = _mm512_load_ps(wt + (size_t)k * kPanelRows + 16);
    for (int t = 0; t < MT; ++t) {
      const __m512 xb = _mm512_set1_ps(x[(size_t)t * K + k]);
      acc[t][0] = _mm512_fmadd_ps(xb, w0, acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(xb, w1, acc[t][1]);
    }
  }
  for (int t = 0; t < MT; ++t) {
    _mm512_mask_storeu_ps(y + (size_t)t * n, m0, acc[t][0]);
    _mm512_mask_storeu_ps(y + (size_t)t * n + 16, m1, acc[t][1]);
  }
}

// The same for m tokens, in tiles of 12, 4, 2 and 1.
inline void PanelTokens(const float* wt, int32_t kc, const float* x, int32_t K, float* y, int32_t n, int32_t m, __mmask16 m0, __mmask16 m1) {
  int32_t t = 0;
  for (; t + 12 <= m; t += 12) PanelTile<12>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, m0, m1);
  for (; t + 4 <= m; t += 4) PanelTile<4>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, m0, m1);
  for (; t + 2 <= m; t += 2) PanelTile<2>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, m0, m1);
  for (; t < m; ++t) PanelTile<1>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, m0, m1);
}

}  // namespace w4a8::cpu::w4a16::avx512
