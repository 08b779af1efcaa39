// The packed GEMM compiled with avx512 flags (CMake adds them from the file name).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "linalg/gemm_isa.h"
#include "linalg/parallel.h"

namespace w4a8::gemm_isa::avx512 {

#include "linalg/gemm_kernel.h"

void GemmF32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  GemmImpl<float, 64>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}
void GemmF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc, int threads) {
  GemmImpl<double, 64>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

}  // namespace w4a8::gemm_isa::avx512
