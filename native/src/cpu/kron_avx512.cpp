// Kronecker adapter building block with AVX-512: C += A * B vectorized over N, up to 8 rows x 32
// columns of accumulators (16 independent FMA chains). Compiled with AVX-512 flags (file name).
// The accumulators are named registers, not an array: GCC kept an `__m512 acc[R][2]` array on the
// stack and stored it back on every step of K, which made this kernel store-bound (perf showed the
// spills as the hottest instructions, at about a tenth of the FMA rate).
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

#define W4A8_KRON_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

// R rows (1..8) starting at i, 32 columns starting at j (masked at the right edge). Each C element
// is updated c = fma(A[i][kk], B[kk][j], c) for kk in order, like the scalar twin.
template <int R>
void Block(int32_t i, int32_t j, __mmask16 m0, __mmask16 m1, int32_t K, const float* A, int32_t lda,
           const float* B, int32_t ldb, float* C, int32_t ldc) {
#define W4A8_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
  W4A8_KRON_ROWS(W4A8_DECL)
#undef W4A8_DECL
#define W4A8_LOAD(r)                                                          \
  if constexpr (R > r) {                                                      \
    c##r##0 = _mm512_maskz_loadu_ps(m0, C + (size_t)(i + r) * ldc + j);      \
    c##r##1 = _mm512_maskz_loadu_ps(m1, C + (size_t)(i + r) * ldc + j + 16); \
  }
  W4A8_KRON_ROWS(W4A8_LOAD)
#undef W4A8_LOAD
  const float* a = A + (size_t)i * lda;
  for (int32_t kk = 0; kk < K; ++kk) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + (size_t)kk * ldb + j);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, B + (size_t)kk * ldb + j + 16);
#define W4A8_FMA(r)                                                 \
  if constexpr (R > r) {                                            \
    const __m512 av = _mm512_set1_ps(a[(size_t)r * lda + kk]);      \
    c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                     \
    c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);                     \
  }
    W4A8_KRON_ROWS(W4A8_FMA)
#undef W4A8_FMA
  }
#define W4A8_STORE(r)                                                        \
  if constexpr (R > r) {                                                     \
    _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + j, m0, c##r##0);      \
    _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + j + 16, m1, c##r##1); \
  }
  W4A8_KRON_ROWS(W4A8_STORE)
#undef W4A8_STORE
}

#undef W4A8_KRON_ROWS

}  // namespace

void MatMulAddAvx512(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                     float* C, int32_t ldc) {
  for (int32_t j = 0; j < N; j += 32) {
    const __mmask16 m0 = Lanes(N - j), m1 = Lanes(N - j - 16);
    int32_t i = 0;
    for (; i + 8 <= M; i += 8) Block<8>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc);
    switch (M - i) {
      case 7: Block<7>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 6: Block<6>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 5: Block<5>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 4: Block<4>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 3: Block<3>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 2: Block<2>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      case 1: Block<1>(i, j, m0, m1, K, A, lda, B, ldb, C, ldc); break;
      default: break;
    }
  }
}

}  // namespace w4a8::cpu::kron
