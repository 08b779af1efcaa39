// GEMM entry points over the CPU dispatch table's linalg entries (cpu/dispatch.cpp), the generic
// (SSE2-width) instance and the naive reference the tests compare against.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/dispatch.h"
#include "linalg/gemm_isa.h"
#include "linalg/parallel.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"

namespace w4a8 {
namespace gemm_isa::generic {

#include "linalg/gemm_kernel.h"

void GemmF32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  GemmImpl<float, 16>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}
void GemmF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc, int threads) {
  GemmImpl<double, 16>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

}  // namespace gemm_isa::generic

namespace {

std::atomic<const LinalgKernels*> g_scoped{nullptr};

const LinalgKernels& DefaultLinalgKernels() {
  static const LinalgKernels& chosen = cpu::Dispatch().linalg;
  return chosen;
}

}  // namespace

const LinalgKernels& ActiveLinalgKernels() {
  const LinalgKernels* scoped = g_scoped.load(std::memory_order_acquire);
  return scoped ? *scoped : DefaultLinalgKernels();
}

ScopedLinalgIsa::ScopedLinalgIsa(cpu::Isa isa)
    : previous_(g_scoped.load(std::memory_order_acquire)), ok_(cpu::IsaAvailable(isa)) {
  if (ok_) g_scoped.store(&cpu::DispatchFor(isa).linalg, std::memory_order_release);
}

ScopedLinalgIsa::~ScopedLinalgIsa() {
  if (ok_) g_scoped.store(previous_, std::memory_order_release);
}

const char* GemmIsa() { return ActiveLinalgKernels().name; }

void GemmF32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  ActiveLinalgKernels().gemm_f32(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ChunkCount(threads));
}

void GemmF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc, int threads) {
  ActiveLinalgKernels().gemm_f64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ChunkCount(threads));
}

void GemmRefF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]);
    }
}

}  // namespace w4a8
