// Error compensation after weight quantization: a small correction C added beside the quantized
// weight so that y = x (W_q + C) is closer to y = x W. E = W - W_q, both [K][N] (ONNX MatMul B
// layout, y = x W). Three fits, all returning factors rounded to fp16 (how they are stored):
//   lorc        data-free: the rank-r truncated SVD of E (ZeroQuant-V2's LoRC); C = A B, A [K][r], B [r][N].
//   lorc-aware  the exact minimiser of tr((E - C)^T H (E - C)) over rank-r C, H = X^T X [K][K]
//               (damped like GPTQ): with H = L L^T, C = L^-T svd_r(L^T E).
//   kron-aware  C = sum_i A_i (x) B_i, A_i [k1][n1], B_i [k2][n2] (K = k1 k2, N = n1 n2), fitted to E
//               under the same H-weighted norm by alternating least squares (each half-step is the
//               exact minimiser over one factor set given the other; a step that would raise the
//               objective is refused, so it never increases). Initialised by Van Loan-Pitsianis
//               (rank-R SVD of the rearranged E).
// Row index k = p k2 + q, column n = s n2 + t: (A (x) B)[k][n] = A[p][s] B[q][t].
// Nothing here throws; NaN/Inf in the inputs -> kNumericalError.
#pragma once
#include <cstdint>

#include "w4a8/status.h"

namespace w4a8 {

enum class CompensateMethod : int32_t { kLorc = 0, kLorcAware = 1, kKronAware = 2 };

struct CompensateConfig {
  CompensateMethod method = CompensateMethod::kLorcAware;
  int32_t rank = 1;      // low-rank rank, or the number of Kronecker terms R
  int32_t k1 = 0, n1 = 0;  // Kronecker only: A_i shape (k1 | K, n1 | N)
  double damp = 0.01;    // relative dampening of H, as GPTQ (mean of diag H); dead inputs get H_kk = 1
  int32_t max_iters = 30;  // ALS sweeps (kron-aware)
  double tol = 1e-7;     // stop when one sweep lowers the objective by less than tol * the objective
};

struct CompensateResult {
  // Objective tr(D^T H D) / tr(E^T H E) with the damped H (identity for lorc), D = E - C with the
  // stored (fp16) factors: before is 1 by definition, after is what remains.
  double weighted_before = 0, weighted_after = 0;
  int32_t iterations = 0;  // ALS sweeps run (kron-aware)
};

// Factor sizes: low rank A K*r, B r*N; Kronecker A R*k1*n1 (term-major), B R*k2*n2.
int64_t CompensateFactorA(const CompensateConfig& cfg, int32_t k, int32_t n);
int64_t CompensateFactorB(const CompensateConfig& cfg, int32_t k, int32_t n);
// kInvalidArgument unless the config fits K x N (rank >= 1, within the rank of the fit; k1 | K, n1 | N).
Status CheckCompensateConfig(const CompensateConfig& cfg, int32_t k, int32_t n);

// w, w_q [K][N] fp32; hessian [K][K] fp64 (required for the aware fits, ignored by lorc).
// input_scale [K] (optional, AWQ): w_q quantizes diag(s) W and the layer reads x / s, so the fit runs
// in that scaled space: E = diag(s) W - w_q and H becomes diag(1/s) H diag(1/s) (the same output error).
// Outputs: a, b (fp16 values held in fp32), compensated [K][N] = w_q + C (optional),
// history [max_iters + 1] (optional, kron-aware: the objective after init and after each sweep).
Status CompensateError(const float* w, const float* w_q, int32_t k, int32_t n, const double* hessian,
                       const float* input_scale, const CompensateConfig& cfg, float* a, float* b, float* compensated, CompensateResult* result,
                       double* history = nullptr, int threads = 0);

// The ALS normal equations (the element loops of one half-step), fast and reference twins:
// given the other factor set F (R terms of [fr][fc]) and HE = H E [K][N], fill
//   G   [R*m][R*m]  G[(i,p)][(j,p')] = sum H[(p,q)][(p',q')] (F_i F_j^T)[q][q']   (solving for A; m = k1)
//   rhs [R*m][c]    rhs[(i,p)][s]    = sum_{q,t} F_i[q][t] HE[(p,q)][(s,t)]
// `for_a` true: unknowns A (F = B, m = k1, c = n1); false: unknowns B (F = A, m = k2, c = n2).
void KronNormalEquations(const double* h, const double* he, int32_t k1, int32_t k2, int32_t n1, int32_t n2,
                         int32_t terms, const double* f, bool for_a, double* g, double* rhs);
void KronNormalEquationsRef(const double* h, const double* he, int32_t k1, int32_t k2, int32_t n1, int32_t n2,
                            int32_t terms, const double* f, bool for_a, double* g, double* rhs);

}  // namespace w4a8
