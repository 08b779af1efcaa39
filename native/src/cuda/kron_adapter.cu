// Kronecker adapter term y[t] += sum_i (A_i kron B_i) x[t] (convention of cpu_adapters.h), one block
// per token: first T_i = X B_i^T for every term into shared memory ([a_cols][b_rows] each, X the token
// viewed as [a_cols][b_cols]), then each output y[p * b_rows + q] += sum_i sum_r A_i[p][r] T_i[r][q],
// summed in registers and added to y once. The Kronecker product is never formed.
#include "cuda_common.cuh"

namespace w4a8::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) KronAdapterKernel(const DeviceKronTerms kt, const float* x, float* y) {
  extern __shared__ float tmat[];  // [terms][a_cols][b_rows]
  const int32_t n = kt.a_rows * kt.b_rows, k = kt.a_cols * kt.b_cols;
  const int32_t inner = kt.a_cols * kt.b_rows;
  const float* xr = x + (size_t)blockIdx.x * k;
  float* yr = y + (size_t)blockIdx.x * n;
  for (int32_t idx = threadIdx.x; idx < kt.terms * inner; idx += kThreads) {
    const int32_t term = idx / inner, r = (idx % inner) / kt.b_rows, q = idx % kt.b_rows;
    const float* brow = kt.d_b + ((size_t)term * kt.b_rows + q) * kt.b_cols;
    const float* xrow = xr + (size_t)r * kt.b_cols;
    float sum = 0.0f;
    for (int32_t s = 0; s < kt.b_cols; ++s) sum = fmaf(brow[s], xrow[s], sum);
    tmat[idx] = sum;
  }
  __syncthreads();
  for (int32_t out = threadIdx.x; out < n; out += kThreads) {
    const int32_t p = out / kt.b_rows, q = out % kt.b_rows;
    float sum = 0.0f;
    for (int32_t term = 0; term < kt.terms; ++term) {
      const float* arow = kt.d_a + ((size_t)term * kt.a_rows + p) * kt.a_cols;
      const float* tcol = tmat + (size_t)term * inner + q;
      for (int32_t r = 0; r < kt.a_cols; ++r) sum = fmaf(arow[r], tcol[(size_t)r * kt.b_rows], sum);
    }
    yr[out] += sum;
  }
}

}  // namespace

Status KroneckerAdapterAdd(const DeviceKronTerms& kt, int32_t m, const float* d_x, float* d_y, void* stream) {
  if (!kt.d_a || !kt.d_b || !d_x || !d_y || m < 1 || kt.terms < 1 || kt.a_rows < 1 || kt.a_cols < 1 ||
      kt.b_rows < 1 || kt.b_cols < 1)
    return Status::kInvalidArgument;
  const int64_t inner = (int64_t)kt.terms * kt.a_cols * kt.b_rows;
  if ((int64_t)kt.a_rows * kt.b_rows > INT32_MAX || (int64_t)kt.a_cols * kt.b_cols > INT32_MAX)
    return Status::kInvalidArgument;
  if (inner > kKronMaxInner) return Status::kUnsupported;
  KronAdapterKernel<<<m, kThreads, (size_t)inner * sizeof(float), AsStream(stream)>>>(kt, d_x, d_y);
  return CheckLaunch();
}

}  // namespace w4a8::cuda
