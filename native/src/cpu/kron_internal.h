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

// Int8 low-rank building blocks (lowrank_int8*.cpp), one per ISA in the dispatch table.
// Dot: sum_k x[k] * q[k] in 64 fp32 lanes (four independent 16-wide FMA chains on AVX-512, so
// the dot is not bound by FMA latency), lane l = fma over k = l, l + 64, ... in order (a tail
// shorter than 64 fills the low lanes), then the lanes are summed as a fixed tree: l += l + 32,
// l += l + 16, l += l + 8, l += l + 4, l += l + 2, l += l + 1. Every ISA follows it: same bits.
using Int8DotFn = float (*)(const float* x, const int8_t* q, int32_t k);
// Rows: y[t][j] = fma(w[t * ldw + c], q[c * ldq + j], y[t][j]) for c = 0..r-1 in order, for t < m
// and j < cols.
using Int8RowsAddFn = void (*)(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q,
                               int32_t ldq, float* y, int32_t ldy);
float Int8DotScalar(const float* x, const int8_t* q, int32_t k);
float Int8DotAvx2(const float* x, const int8_t* q, int32_t k);
float Int8DotAvx512(const float* x, const int8_t* q, int32_t k);
void Int8RowsAddScalar(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                       float* y, int32_t ldy);
void Int8RowsAddAvx2(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                     float* y, int32_t ldy);
void Int8RowsAddAvx512(int32_t m, int32_t cols, int32_t r, const float* w, int32_t ldw, const int8_t* q, int32_t ldq,
                       float* y, int32_t ldy);

}  // namespace w4a8::cpu::kron
