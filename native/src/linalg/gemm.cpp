// GEMM entry points: argument handling, CPU dispatch, the generic (SSE2-width) instance and the
// naive reference the tests compare against.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "linalg/gemm_isa.h"
#include "linalg/parallel.h"
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

std::atomic<int> g_threads{2};

enum class Isa { kGeneric, kAvx2, kAvx512 };

Isa DetectIsa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

int Threads(int threads) { return threads > 0 ? threads : LinalgThreads(); }

}  // namespace

int LinalgThreads() { return g_threads.load(); }
void SetLinalgThreads(int threads) { g_threads.store(std::max(1, std::min(threads, 256))); }

const char* GemmIsa() {
  switch (CurrentIsa()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

void GemmF32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  switch (CurrentIsa()) {
    case Isa::kAvx512: return gemm_isa::avx512::GemmF32(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
    case Isa::kAvx2: return gemm_isa::avx2::GemmF32(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
    default: return gemm_isa::generic::GemmF32(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
  }
}

void GemmF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc, int threads) {
  switch (CurrentIsa()) {
    case Isa::kAvx512: return gemm_isa::avx512::GemmF64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
    case Isa::kAvx2: return gemm_isa::avx2::GemmF64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
    default: return gemm_isa::generic::GemmF64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads(threads));
  }
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
