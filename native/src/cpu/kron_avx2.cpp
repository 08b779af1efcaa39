// Kronecker adapter building block with AVX2 + FMA: C += A * B vectorized over N, 4 rows x 16
// columns of accumulators. Compiled with AVX2 flags (file name).
#include <immintrin.h>

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

inline __m256i Lanes(int32_t count) {
  alignas(32) int32_t lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = l < count ? -1 : 0;
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
}

// FULL: all 16 columns are real, so plain moves replace the masked ones (microcoded on AMD).
template <int R, bool FULL>
void Block(int32_t i, int32_t j, __m256i m0, __m256i m1, int32_t K, const float* A, int32_t lda, const float* B,
           int32_t ldb, float* C, int32_t ldc) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) {
    acc[r][0] = FULL ? _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j) : _mm256_maskload_ps(C + (size_t)(i + r) * ldc + j, m0);
    acc[r][1] = FULL ? _mm256_loadu_ps(C + (size_t)(i + r) * ldc + j + 8) : _mm256_maskload_ps(C + (size_t)(i + r) * ldc + j + 8, m1);
  }
  for (int32_t kk = 0; kk < K; ++kk) {
    const __m256 b0 = FULL ? _mm256_loadu_ps(B + (size_t)kk * ldb + j) : _mm256_maskload_ps(B + (size_t)kk * ldb + j, m0);
    const __m256 b1 = FULL ? _mm256_loadu_ps(B + (size_t)kk * ldb + j + 8) : _mm256_maskload_ps(B + (size_t)kk * ldb + j + 8, m1);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(A + (size_t)(i + r) * lda + kk);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if (FULL) {
      _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j, acc[r][0]);
      _mm256_storeu_ps(C + (size_t)(i + r) * ldc + j + 8, acc[r][1]);
    } else {
      _mm256_maskstore_ps(C + (size_t)(i + r) * ldc + j, m0, acc[r][0]);
      _mm256_maskstore_ps(C + (size_t)(i + r) * ldc + j + 8, m1, acc[r][1]);
    }
  }
}

}  // namespace

void MatMulAddAvx2(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                   float* C, int32_t ldc) {
  for (int32_t j = 0; j < N; j += 16) {
    const __m256i m0 = Lanes(N - j), m1 = Lanes(N - j - 8);
    int32_t i = 0;
    if (N - j >= 16) {
      for (; i + 4 <= M; i += 4) Block<4, true>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
      for (; i < M; ++i) Block<1, true>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
    } else {
      for (; i + 4 <= M; i += 4) Block<4, false>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
      for (; i < M; ++i) Block<1, false>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
    }
  }
}

}  // namespace w4a8::cpu::kron
