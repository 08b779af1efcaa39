// The second half of split-K: y[m][n] = sum over splits of partial[s][m][n], in split order (so the
// result does not depend on which block finished first), converted to the output type.
#include <algorithm>

#include "cuda_common.cuh"

namespace w4a8::cuda {
namespace {

__global__ void SumSplitsKernel(const float* partial, int32_t splits, int32_t m, int32_t n, int32_t n_padded,
                                void* y, DType y_type) {
  const size_t total = (size_t)m * n;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t mm = i / n, nn = i % n;
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[((size_t)s * m + mm) * n_padded + nn];
    StoreFromFloat(y, y_type, i, sum);
  }
}

}  // namespace

Status SumSplits(const float* partial, int32_t splits, int32_t m, int32_t n, int32_t n_padded, void* y, DType y_type,
                 cudaStream_t stream) {
  const size_t total = (size_t)m * n;
  const int blocks = (int)std::min<size_t>((total + 255) / 256, 4096);
  SumSplitsKernel<<<blocks, 256, 0, stream>>>(partial, splits, m, n, n_padded, y, y_type);
  return CheckLaunch();
}

}  // namespace w4a8::cuda
