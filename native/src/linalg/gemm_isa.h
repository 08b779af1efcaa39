// Per-ISA instances of the packed GEMM (gemm_kernel.h), chosen at run time in gemm.cpp.
#pragma once
#include <cstdint>

namespace w4a8::gemm_isa {

#define W4A8_DECLARE_GEMM(ns)                                                                              \
  namespace ns {                                                                                           \
  void GemmF32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, \
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads);               \
  void GemmF64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,           \
               int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc,             \
               int threads);                                                                               \
  }

W4A8_DECLARE_GEMM(generic)
W4A8_DECLARE_GEMM(avx2)
W4A8_DECLARE_GEMM(avx512)
#undef W4A8_DECLARE_GEMM

}  // namespace w4a8::gemm_isa
