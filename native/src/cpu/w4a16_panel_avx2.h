// The register tile of the AVX2 W4A16 kernels for larger M, shared by the canonical path
// (w4a16_avx2.cpp) and the packed one (w4a16_packed_avx2.cpp): weights dequantized and transposed
// into wt [k][kPanelRows] for kChunkK k at a time; each token's x[k] is broadcast against two ymm of
// 8 rows. Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace w4a8::cpu::w4a16::avx2 {

constexpr int32_t kPanelRows = 16;  // two ymm of output rows; tiles of 5 tokens (10 accumulators: 6 spilled one)
constexpr int32_t kChunkK = 256;    // a multiple of every group size

inline __m256i Lanes(int32_t count) {
  alignas(32) int32_t lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = l < count ? -1 : 0;
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
}

// `full`: all 16 rows are real, so y is read and written with plain moves (AMD runs masked stores
// in microcode, slowly).
template <int MT>
inline void PanelTile(const float* wt, int32_t kc, const float* x, int32_t K, float* y, int32_t n, bool full, __m256i m0,
               __m256i m1) {
  __m256 acc[MT][2];
  for (int t = 0; t < MT; ++t) {
    acc[t][0] = full ? _mm256_loadu_ps(y + (size_t)t * n) : _mm256_maskload_ps(y + (size_t)t * n, m0);
    acc[t][1] = full ? _mm256_loadu_ps(y + (size_t)t * n + 8) : _mm256_maskload_ps(y + (size_t)t * n + 8, m1);
  }
  for (int32_t k = 0; k < kc; ++k) {
    const __m256 w0 = _mm256_load_ps(wt + (size_t)k * kPanelRows);
    const __m256 w1 = _mm256_load_ps(wt + (size_t)k * kPanelRows + 8);
    for (int t = 0; t < MT; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + (size_t)t * K + k);
      acc[t][0] = _mm256_fmadd_ps(xb, w0, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(xb, w1, acc[t][1]);
    }
  }
  for (int t = 0; t < MT; ++t) {
    if (full) {
      _mm256_storeu_ps(y + (size_t)t * n, acc[t][0]);
      _mm256_storeu_ps(y + (size_t)t * n + 8, acc[t][1]);
    } else {
      _mm256_maskstore_ps(y + (size_t)t * n, m0, acc[t][0]);
      _mm256_maskstore_ps(y + (size_t)t * n + 8, m1, acc[t][1]);
    }
  }
}

// The same for m tokens, in tiles of 5, 2 and 1.
inline void PanelTokens(const float* wt, int32_t kc, const float* x, int32_t K, float* y, int32_t n, int32_t m, bool full, __m256i m0, __m256i m1) {
  int32_t t = 0;
  for (; t + 5 <= m; t += 5) PanelTile<5>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, full, m0, m1);
  for (; t + 2 <= m; t += 2) PanelTile<2>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, full, m0, m1);
  for (; t < m; ++t) PanelTile<1>(wt, kc, x + (size_t)t * K, K, y + (size_t)t * n, n, full, m0, m1);
}

}  // namespace w4a8::cpu::w4a16::avx2
