// Per-token activation quantization to int8 (the W4A8 GEMM's A operand) and to FP8 E4M3.
// One block per token: a max-reduction over the row, then a second pass that scales and rounds with
// the one definition the CPU kernels and the quantizer use (act_quant_def.h, through cuda_bits.h),
// so results match the CPU bit for bit.
#include "cuda_common.cuh"
#include "w4a8/cuda_bits.h"

namespace w4a8::cuda {
namespace {

constexpr int kThreads = 256;

__device__ float RowAbsMax(const void* x, DType t, size_t row_offset, int32_t k) {
  __shared__ float warp_max[kThreads / 32];
  float amax = 0.0f;
  for (int32_t i = threadIdx.x; i < k; i += kThreads) amax = AbsMaxStep(amax, LoadAsFloat(x, t, row_offset + i));
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  float all = warp_max[0];
  for (int w = 1; w < kThreads / 32; ++w) all = fmaxf(all, warp_max[w]);
  return all;
}

__global__ void __launch_bounds__(kThreads) QuantizeInt8Kernel(const void* x, DType t, int32_t k, int8_t* q,
                                                               int32_t ldq, float* scales) {
  const size_t row = blockIdx.x;
  const TokenScale s = MakeTokenScale(RowAbsMax(x, t, row * k, k), kInt8Max);
  if (threadIdx.x == 0) scales[row] = s.scale;
  for (int32_t i = threadIdx.x; i < ldq; i += kThreads)
    q[row * ldq + i] = i < k ? QuantizeInt8(LoadAsFloat(x, t, row * k + i), s.inverse) : (int8_t)0;
}

__global__ void __launch_bounds__(kThreads) QuantizeFp8Kernel(const void* x, DType t, int32_t k, uint8_t* q,
                                                              float* scales) {
  const size_t row = blockIdx.x;
  const TokenScale s = MakeTokenScale(RowAbsMax(x, t, row * k, k), kE4M3Max);
  if (threadIdx.x == 0) scales[row] = s.scale;
  for (int32_t i = threadIdx.x; i < k; i += kThreads)
    q[row * k + i] = QuantizeE4M3(LoadAsFloat(x, t, row * k + i), s.inverse);
}

bool ValidType(DType t) { return t == DType::kFloat32 || t == DType::kBfloat16 || t == DType::kFloat16; }

}  // namespace

Status QuantizeActivationsInt8(const void* d_x, DType x_type, int32_t m, int32_t k, int8_t* d_q, int32_t ldq,
                               float* d_scales, void* stream) {
  if (!d_x || !d_q || !d_scales || m < 1 || k < 1 || ldq < k || ldq % kCudaTileK != 0 || !ValidType(x_type))
    return Status::kInvalidArgument;
  QuantizeInt8Kernel<<<m, kThreads, 0, AsStream(stream)>>>(d_x, x_type, k, d_q, ldq, d_scales);
  return CheckLaunch();
}

Status QuantizeActivationsFp8(const void* d_x, DType x_type, int32_t m, int32_t k, uint8_t* d_q, float* d_scales,
                              void* stream) {
  if (!d_x || !d_q || !d_scales || m < 1 || k < 1 || !ValidType(x_type)) return Status::kInvalidArgument;
  QuantizeFp8Kernel<<<m, kThreads, 0, AsStream(stream)>>>(d_x, x_type, k, d_q, d_scales);
  return CheckLaunch();
}

}  // namespace w4a8::cuda
