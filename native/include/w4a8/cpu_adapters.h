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
// The same product on a packed weight (Prepack; the CPU layout of formats.h), so that one packed copy
// serves int8 and float activations and the canonical arrays need not stay resident. Rows in SIMD
// lanes: faster than the canonical kernels from M = 1 on AVX-512 (docs/BENCHMARKS.md, "W4A16 on the packed weight").
// `isa` as above; kScalar is the reference (float64 sums of x times CpuPackedDequantizeAt).
Status GemmW4A16Packed(const PackedWeight& w, Isa isa, const GemmArgs& a);

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
// y [m][n] += (x U) V with U = dequantized ut [r][k] (transposed) and V = dequantized v [r][n], computed
// as two exact integer products (VNNI / AVX2 byte dot products) per token t:
//   1. x_q, sx = x[t] quantized per token to int8 as GemmW4A8 does it (act_quant_def.h; the values the
//      fused call reuses from the GEMM);
//   2. w[c] = (float)(sum_k x_q[k] * ut[c][k]) * sx * us[c] * vs[c]   (exact int32, then fp32 left to right);
//   3. w_q, sw = w quantized per token to int8 (act_quant_def.h: the rank-r intermediate in int8);
//   4. y[t][j] = fma(sw, (float)(sum_c w_q[c] * v[c][j]), y[t][j])   (exact int32, one rounding).
// Why int8 for w: the second product then runs in integers too. On normal inputs the term is off the
// float64 product of the dequantized factors by about 1 % rms of the term, half from int8 x (the
// GEMM's own rounding) and half from int8 w; the term being a few % of y, that is about 1e-4 of y,
// well below the W4A8 error it corrects (test_cpu_lowrank_int8 bounds it at 2 %). Every
// ISA and thread count gives the same bits as the reference. k and r are at most 65536 (the int32
// sums stay exact: 127 * 128 * 65536 < 2^31); beyond, kInvalidArgument.
struct LowRankInt8Term {
  int32_t k, r, n;
  const int8_t* ut;  // [r][k]
  const float* us;   // [r]
  const int8_t* v;   // [r][n]
  const float* vs;   // [r]
};
Status LowRankAddInt8(const LowRankInt8Term& lr, int32_t m, const float* x, float* y, Isa isa);
// Scalar twin: the four steps above, token by token.
Status LowRankAddInt8Reference(const LowRankInt8Term& lr, int32_t m, const float* x, float* y);
// y = W4A8(x) (+bias) + the term in one call: with a.act == kPerToken the term reads the activations
// the GEMM has quantized (one pass over x) and its first product runs in the GEMM's thread-pool round
// beside the tiles; same bits as GemmW4A8 then LowRankAddInt8. lr must match w (k, n).
Status GemmW4A8LowRankInt8(const PackedWeight& w, const LowRankInt8Term& lr, const GemmArgs& a);
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
