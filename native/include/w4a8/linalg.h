// The few dense linear-algebra routines the quantizers need (GPTQ, AWQ, low-rank compensation).
// Our own code, row-major throughout, no BLAS. Threads: `threads` <= 0 means LinalgThreads().
#pragma once
#include <cstddef>
#include <cstdint>

#include "w4a8/status.h"

namespace w4a8 {

// Default worker count for every routine below (2 unless changed; the target machines have 2 cores).
int LinalgThreads();
void SetLinalgThreads(int threads);

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major with leading dimensions (elements per row).
// op(A) is A[M,K] (lda >= K) or, with trans_a, A stored [K,M] (lda >= M); likewise op(B) [K,N].
// beta == 0 overwrites C (NaN in C is not propagated). Blocked, packed, SIMD by CPU dispatch.
void GemmF32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads = 0);
void GemmF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
             int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc, int threads = 0);

// The straightforward triple loop (fp64 accumulation), the reference the tests hold GemmF32/F64 to.
void GemmRefF64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// Which SIMD path the GEMMs use here: "avx512", "avx2" or "generic".
const char* GemmIsa();

// In place: the lower triangle of a[n,n] (symmetric positive definite) becomes L with A = L L^T;
// the strict upper triangle is zeroed. kNumericalError when A is not positive definite.
Status CholeskyLower(double* a, int64_t n, int threads = 0);

// In place inverse of a lower-triangular L[n,n] (upper triangle ignored and zeroed).
Status InvertLowerTriangular(double* l, int64_t n, int threads = 0);

// Solves L X = B (left, lower) or X L^T = B (right, transposed) in place in b[rows, cols].
//   left:  L[n,n], B[n, nrhs]  -> X = L^-1 B
//   right: L[n,n], B[nrhs, n]  -> X = B L^-T
void SolveLowerLeft(const double* l, int64_t n, double* b, int64_t nrhs);
void SolveLowerTransposedRight(const double* l, int64_t n, double* b, int64_t nrhs);

// Inverse of a symmetric positive definite A[n,n] via its Cholesky factor (out may equal a).
Status CholeskyInverse(const double* a, int64_t n, double* out, int threads = 0);

// U upper-triangular with A^-1 = U^T U (what GPTQ calls "Cholesky of H^-1, upper"), computed as the
// inverse of R where A = R R^T (R upper: the Cholesky of A with rows and columns reversed). out may equal a.
Status UpperCholeskyOfInverse(const double* a, int64_t n, double* out, int threads = 0);

// Householder QR of A[m,n], m >= n: Q[m,n] with orthonormal columns, R[n,n] upper triangular, A = Q R.
Status HouseholderQr(const double* a, int64_t m, int64_t n, double* q, double* r);

// Truncated SVD A[m,n] ~ U[m,rank] diag(S[rank]) Vt[rank,n]: randomized range finder with `power_iters`
// subspace iterations and `oversample` extra columns, then an exact one-sided Jacobi SVD of the small
// projected matrix. S is descending, U and V orthonormal columns. Deterministic for a given seed.
Status TruncatedSvd(const double* a, int64_t m, int64_t n, int64_t rank, double* u, double* s, double* vt,
                    int power_iters = 2, int64_t oversample = 8, uint64_t seed = 1);

// Exact thin SVD of A[m,n] (m >= n) by one-sided Jacobi: U[m,n], S[n] descending, Vt[n,n].
Status JacobiSvd(const double* a, int64_t m, int64_t n, double* u, double* s, double* vt);

}  // namespace w4a8
