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

}  // namespace w4a8::cpu::kron
