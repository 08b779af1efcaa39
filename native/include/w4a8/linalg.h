// The few dense linear-algebra routines the quantizers need (GPTQ, AWQ, low-rank compensation).
// Our own code, row-major throughout, no BLAS. Work runs on the kernels' persistent thread pool
// (cpu::SetNumThreads / cpu::NumThreads in cpu_kernels.h: one setting for kernels and linalg).
// `threads` is the number of fixed chunks a routine splits into; <= 0 means cpu::NumThreads().
// Results never depend on it. Routines that return a Status turn C++ exceptions (bad_alloc in a
// worker) into kOutOfMemory / kInvalidArgument; the void GEMMs let them propagate to their caller.
#pragma once
#include <cstddef>
#include <cstdint>

#include "w4a8/status.h"

namespace w4a8 {

namespace cpu {
enum class Isa : int;  // cpu_kernels.h
}

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

// One GEMM instance per CPU ISA, held in the CPU dispatch table (src/cpu/dispatch.h: its `linalg`
// entry, with the kernels'), which is chosen once from cpu::DefaultIsa(), the one detector, so W4A8_ISA
// forces linalg and the kernels alike: scalar -> "generic" (SSE2-width vectors), avx2 -> "avx2",
// avx512vnni and amx -> "avx512".
using GemmF32Fn = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                           float, float*, int64_t, int);
using GemmF64Fn = void (*)(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t, int);
struct LinalgKernels {
  const char* name;  // "generic", "avx2", "avx512"
  GemmF32Fn gemm_f32;
  GemmF64Fn gemm_f64;
};
// The instance every routine below uses now: a ScopedLinalgIsa's, else the default dispatch table's.
const LinalgKernels& ActiveLinalgKernels();

// While alive, every linalg routine in the process (GEMM, Cholesky, QR, SVD, and the quantizers on
// top) runs `isa`'s instance: tests and benchmarks use it to run each path the CPU has. Not for
// concurrent callers that want different paths. An ISA the CPU lacks changes nothing (ok() false).
class ScopedLinalgIsa {
 public:
  explicit ScopedLinalgIsa(cpu::Isa isa);
  ~ScopedLinalgIsa();
  ScopedLinalgIsa(const ScopedLinalgIsa&) = delete;
  ScopedLinalgIsa& operator=(const ScopedLinalgIsa&) = delete;
  bool ok() const { return ok_; }

 private:
  const LinalgKernels* previous_;
  bool ok_;
};

// The active instance's name: "avx512", "avx2" or "generic".
const char* GemmIsa();

// In place: the lower triangle of a[n,n] (symmetric positive definite) becomes L with A = L L^T;
// the strict upper triangle is zeroed. kNumericalError when A is not positive definite.
Status CholeskyLower(double* a, int64_t n, int threads = 0);
// fp32 (GEMM updates in fp32, the small diagonal-block steps accumulated in fp64).
Status CholeskyLower(float* a, int64_t n, int threads = 0);

// In place inverse of a lower-triangular L[n,n] (upper triangle ignored and zeroed).
Status InvertLowerTriangular(double* l, int64_t n, int threads = 0);
Status InvertLowerTriangular(float* l, int64_t n, int threads = 0);

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
// The same in fp32: GPTQ's K = 11008 factor in half the memory (the reference GPTQ factors in fp32).
Status UpperCholeskyOfInverse(const float* a, int64_t n, float* out, int threads = 0);

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
