// Per-ISA building block of the Kronecker adapter (kron.cpp): a small fp32 matrix multiply-add, one
// per ISA in the dispatch table (dispatch.cpp).
#pragma once
#include <cstdint>

namespace w4a8::cpu::kron {

// C[M][N] += A[M][K] * B[K][N], row-major with leading dimensions. Every C element is updated as
// c = fma(A[i][kk], B[kk][j], c) for kk = 0, 1, ... in order, so all ISAs give bit-identical results.
using MatMulAddFn = void (*)(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B,
                             int32_t ldb, float* C, int32_t ldc);
void MatMulAddScalar(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                     float* C, int32_t ldc);  // kron.cpp
void MatMulAddAvx512(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                     float* C, int32_t ldc);
void MatMulAddAvx2(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B, int32_t ldb,
                   float* C, int32_t ldc);

// Int8 low-rank building blocks (lowrank_int8*.cpp), one per ISA in the dispatch table. Both are
// exact integer products (int32; the caller keeps |result| < 2^31, cpu_adapters.h), so every ISA gives
// the same bits. Activations (a) lie in -127..127; factors (f) may be any int8.
// Dots: out[t * ldo + c] = sum_{i < k} a[t * lda + i] * f[c * ldf + i] for t < m, c < r. a_sum[t] is
// sum_{i < k} a[t * lda + i] (the VNNI kernel's offset correction).
using Int8DotsFn = void (*)(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t* a_sum,
                            const int8_t* f, int32_t ldf, int32_t* out, int32_t ldo);
// Rows: y[t * ldy + j] = fma(scale[t], (float)sum_{c < r} a[t * lda + c] * f[c * ldf + j], y[t * ldy + j])
// for t < m, j < cols. Each row of a is readable and zero from r up to r rounded up to 4; a_sum[t] is
// the sum of row t of a.
using Int8RowsAddFn = void (*)(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t* a_sum,
                               const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy);
void Int8DotsScalar(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t* a_sum, const int8_t* f,
                    int32_t ldf, int32_t* out, int32_t ldo);
void Int8DotsAvx2(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t* a_sum, const int8_t* f,
                  int32_t ldf, int32_t* out, int32_t ldo);
void Int8DotsAvx512(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t* a_sum, const int8_t* f,
                    int32_t ldf, int32_t* out, int32_t ldo);
void Int8RowsAddScalar(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t* a_sum,
                       const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy);
void Int8RowsAddAvx2(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t* a_sum,
                     const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy);
void Int8RowsAddAvx512(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t* a_sum,
                       const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy);

}  // namespace w4a8::cpu::kron
