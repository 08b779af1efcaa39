// GEMM entry points: the per-ISA table (chosen from the one ISA detector, cpu/isa.cpp), the generic
// (SSE2-width) instance and the naive reference the tests compare against.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

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

const LinalgKernels kGeneric{"generic", gemm_isa::generic::GemmF32, gemm_isa::generic::GemmF64};
const LinalgKernels kAvx2{"avx2", gemm_isa::avx2::GemmF32, gemm_isa::avx2::GemmF64};
const LinalgKernels kAvx512{"avx512", gemm_isa::avx512::GemmF32, gemm_isa::avx512::GemmF64};

std::atomic<const LinalgKernels*> g_scoped{nullptr};

const LinalgKernels& DefaultLinalgKernels() {
  static const LinalgKernels& chosen = LinalgKernelsFor(cpu::DefaultIsa());
  return chosen;
}

}  // namespace

const LinalgKernels& LinalgKernelsFor(cpu::Isa isa) {
  switch (isa) {
    case cpu::Isa::kAvx512Vnni:
    case cpu::Isa::kAmx: return kAvx512;
    case cpu::Isa::kAvx2: return kAvx2;
    default: return kGeneric;
  }
}

const LinalgKernels& ActiveLinalgKernels() {
  const LinalgKernels* scoped = g_scoped.load(std::memory_order_acquire);
  return scoped ? *scoped : DefaultLinalgKernels();
}

ScopedLinalgIsa::ScopedLinalgIsa(cpu::Isa isa)
    : previous_(g_scoped.load(std::memory_order_acquire)), ok_(cpu::IsaAvailable(isa)) {
  if (ok_) g_scoped.store(&LinalgKernelsFor(isa), std::memory_order_release);
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
