// CPU kernels that sit beside the W4A8 GEMM (cpu_kernels.h): W4A16 (fp32 activations, 4-bit
// weights dequantized on the fly), the Kronecker adapter term, and the fused W4A8 + Kronecker call.
//
// W4A16 reads the canonical MatMulNBits layout (formats.h) directly: each output row's codes are
// contiguous, which is what a dequantizing GEMV wants, so it needs no prepacked copy.
//
// Kronecker adapter (KronA-style): y[t] += sum_i (A_i kron B_i) x[t] for every token t, with
//   A_i [a_rows][a_cols], B_i [b_rows][b_cols] row-major, n = a_rows * b_rows, k = a_cols * b_cols,
//   (A kron B)[p * b_rows + q][r * b_cols + s] = A[p][r] * B[q][s].
// Index convention: x[t] viewed row-major as X [a_cols][b_cols] (X[r][s] = x[t][r * b_cols + s]),
// and y[t] as Y [a_rows][b_rows] (Y[p][q] = y[t][p * b_rows + q]); then
//   Y += A X B^T          (row-major form of the textbook (A kron B) vec(X') = vec(B X' A^T), X' = X^T)
// computed as T = X B^T ([a_cols][b_rows]) then Y += A T: a_cols*b_cols*b_rows + a_rows*a_cols*b_rows
// multiply-adds per token instead of n*k, and the Kronecker product is never materialized.
#pragma once
#include <cstdint>

#include "w4a8/cpu_kernels.h"
#include "w4a8/formats.h"
#include "w4a8/status.h"

namespace w4a8::cpu {

// ---- W4A16 -------------------------------------------------------------------------------
// y = x * W^T (+bias), fp32 x, W dequantized per formats.h (DequantizeAt), fp32 accumulation.
// `isa` picks the kernel (kAmx and kAvx512Vnni both run the AVX-512 path, kScalar the reference);
// results differ from the reference by fp32 rounding only. Unlike the contract's first sketch this
// takes the canonical weight, not a PackedWeight: the addon keeps the canonical arrays beside each
// packed W4A8 weight and passes them here.
Status GemmW4A16(const QuantizedWeight& w, Isa isa, const GemmArgs& a);
// Scalar twin: float64 accumulation per output, single-threaded.
Status GemmW4A16Reference(const QuantizedWeight& w, const GemmArgs& a);

// ---- Kronecker adapter -------------------------------------------------------------------
struct KronTerms {
  int32_t terms, a_rows, a_cols, b_rows, b_cols;
  const float* a;  // [terms][a_rows][a_cols]
  const float* b;  // [terms][b_rows][b_cols]; may be null when b_t is given
  // Optional: the same B_i transposed, [terms][b_cols][b_rows] (W4A8MatMul's kron_b orientation).
  // KroneckerAdapterAdd needs B^T; given here it skips transposing every factor on every call.
  // When both are given they must agree (b_t is used).
  const float* b_t = nullptr;
};
inline int64_t KronN(const KronTerms& kt) { return (int64_t)kt.a_rows * kt.b_rows; }
inline int64_t KronK(const KronTerms& kt) { return (int64_t)kt.a_cols * kt.b_cols; }

// y [m][n] += sum_i (A_i kron B_i) x [m][k]. Each y element's sum runs in a fixed order
// (terms, then r), independent of the thread count. Tokens and terms go in chunks whose T = X B_i^T
// stays cache-resident; per chunk one parallel pass forms T (tasks over terms and rows) and one adds
// A_i T_i into Y (tasks over output rows, the chunk's terms in order), so a decode step with 100
// terms costs a few pool dispatches, not two per term.
Status KroneckerAdapterAdd(const KronTerms& kt, int32_t m, const float* x, float* y, Isa isa);
inline Status KroneckerAdapterAdd(const KronTerms& kt, int32_t m, const float* x, float* y) {
  return KroneckerAdapterAdd(kt, m, x, y, DefaultIsa());
}
// Scalar twin, accumulating each (token, output) in double and adding it to y once.
Status KroneckerAdapterAddReference(const KronTerms& kt, int32_t m, const float* x, float* y);

// ---- Low-rank term ------------------------------------------------------------------------
// y [m][n] += (x [m][k] U [k][r]) V [r][n], row-major, fp32 (the LoRC / LoRA correction x U V).
// T = x U is formed first (m*k*r + m*r*n multiply-adds): for m < 8 by the Kronecker kernels'
// multiply-add over fixed 512-row chunks of K (partials added in chunk order), from 8 rows by the
// blocked linalg GemmF32; either way the result does not depend on the thread count.
struct LowRankTerm {
  int32_t k, r, n;
  const float* u;  // [k][r]
  const float* v;  // [r][n]
};
Status LowRankAdd(const LowRankTerm& lr, int32_t m, const float* x, float* y, Isa isa);
// Scalar twin: each (token, output) accumulated in double and added to y once.
Status LowRankAddReference(const LowRankTerm& lr, int32_t m, const float* x, float* y);

// ---- Low-rank term with int8 factors (formats.h "Int8Rows") ---------------------------------
// y [m][n] += (x U) V with U = dequantized ut [r][k] (transposed) and V = dequantized v [r][n].
// m < 8 (decode) reads the int8 factors directly: T[t][c] = us[c] * dot(x[t], ut[c]) (a 16-lane
// dot, Int8DotRow's order), then y[t][j] = fma(T[t][c] * vs[c], v[c][j], y[t][j]) for c in order.
// From 8 rows the factors are dequantized to fp32 and LowRankAdd's GEMM path runs. Results do not
// depend on the thread count, and every ISA gives the same bits.
struct LowRankInt8Term {
  int32_t k, r, n;
  const int8_t* ut;  // [r][k]
  const float* us;   // [r]
  const int8_t* v;   // [r][n]
  const float* vs;   // [r]
};
Status LowRankAddInt8(const LowRankInt8Term& lr, int32_t m, const float* x, float* y, Isa isa);
// Scalar twin: the dequantized factors (Int8RowValue), each (token, output) accumulated in double.
Status LowRankAddInt8Reference(const LowRankInt8Term& lr, int32_t m, const float* x, float* y);
// Quantizes each row of src [rows][cols] to int8 with its own scale (the Int8Rows definition).
// kNumericalError on a value that is not finite.
Status QuantizeInt8Rows(const float* src, int32_t rows, int32_t cols, int8_t* q, float* scales);

// ---- Fused W4A8 + Kronecker ----------------------------------------------------------------
// y = W4A8(x) (+bias) + sum_i (A_i kron B_i) x. The Kronecker shapes must match w (n, k).
Status GemmW4A8Kron(const PackedWeight& w, const KronTerms& kt, const GemmArgs& a);
Status GemmW4A8KronReference(const QuantizedWeight& w, const KronTerms& kt, const GemmArgs& a);

// ---- Float64 ground truth (benchmarks, tests) ----------------------------------------------
// y [m][n] = sum_k x[m][k] * DequantizeAt(w, n, k) in double: the answer a kernel would give with
// no activation quantization and no rounding; used to report each kernel's relative error.
Status GemmDequantizedF64(const QuantizedWeight& w, int32_t m, const float* x, double* y);
// out [k][n] = DequantizeAt(w, n, k): the ONNX MatMul B matrix of the same weights (fp32 baselines).
Status DequantizeToKN(const QuantizedWeight& w, float* out);

}  // namespace w4a8::cpu
