// Kronecker adapter building block with AVX-512: C += A * B vectorized over N, 4 rows x 32 columns
// of accumulators (8 independent FMA chains). Compiled with AVX-512 flags (file name).
#include <immintrin.h>

// GCC 12 flags the undefined-vector idiom inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

inline __mmask16 Lanes(int32_t count) {
  return count >= 16 ? (__mmask16)0xffff : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

template <int R>
void Block(int32_t i, int32_t j, __mmask16 m0, __mmask16 m1, int32_t K, const float* A, int32_t lda,
           const float* B, int32_t ldb, float* C, int32_t ldc) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) {
    acc[r][0] = _mm512_maskz_loadu_ps(m0, C + (size_t)(i + r) * ldc + j);
    acc[r][1] = _mm512_maskz_loadu_ps(m1, C + (size_t)(i + r) * ldc + j + 16);
  }
  for (int32_t kk = 0; kk < K; ++kk) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (size_t)kk * ldb + j);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, B + (size_t)kk * ldb + j + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(A[(size_t)(i + r) * lda + kk]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + j, m0, acc[r][0]);
    _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + j + 16, m1, acc[r][1]);
  }
}

}  // namespace

void MatMulAddAvx512(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                     float* C, int32_t ldc) {
  for (int32_t j = 0; j < N; j += 32) {
    const __mmask16 m0 = Lanes(N - j), m1 = Lanes(N - j - 16);
    int32_t i = 0;
    for (; i + 4 <= M; i += 4) Block<4>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
    for (; i < M; ++i) Block<1>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
  }
}

}  // namespace w4a8::cpu::kron
