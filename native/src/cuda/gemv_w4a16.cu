// W4A16 for decode (m <= 8 tokens): bf16/fp16/fp32 activations times 4-bit weights dequantized in
// registers, fp32 accumulation. Memory-bound: the weight bytes are the cost, so
// - each lane reads one 16-byte word set per k32 step (the Mma8x32 layout: 4 channels x 8 k), a warp
//   512 contiguous bytes, several steps in flight before the first use;
// - codes become exact int8 (q - zp, or 2*value for fp4) with the GEMM's helpers, then floats with one
//   prmt and one subtraction each; the group scale multiplies once per 4 k;
// - activations are staged per 1024-k chunk in shared memory as fp32 (all tokens), read as float4;
// - split-K over blocks when the channel tiles alone would leave SMs idle (< ~4 blocks per SM); the
//   partial sums go to a workspace and a second kernel adds them in a fixed order (deterministic).
#include <algorithm>

#include "cuda_common.cuh"
#include "w4a8/cuda_bits.h"

namespace w4a8::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps = the 4 quads of one 128-channel tile
constexpr int kChunkK = 1024;
constexpr int kAhead = 4;      // k32 steps whose weights are loaded before any is used
constexpr int kStepWords4 = kCudaTileN * kCudaMmaK / 2 / 16;  // uint4 per k32 step of a tile (128)

struct GemvParams {
  const void* x;
  const uint4* codes;
  const float* scales;
  const uint8_t* zero_points;
  float* partial;  // [splits][m][n_padded], or null: write y directly
  void* y;
  int32_t m, n, k, n_padded, k_padded, group_size, steps_per_split;
  DType x_type, y_type;
  bool fp4;
};

__global__ void __launch_bounds__(kThreads) GemvW4A16Kernel(const GemvParams p) {
  __shared__ __align__(16) float xs[kW4A16MaxTokens][kChunkK];
  const int lane = threadIdx.x & 31, quad = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int tile = blockIdx.x;
  const int steps = p.k_padded / kCudaMmaK;
  const int step_begin = blockIdx.y * p.steps_per_split;
  const int step_end = min(step_begin + p.steps_per_split, steps);
  const uint4* wbase = p.codes + (size_t)tile * steps * kStepWords4 + quad * 32 + lane;
  const int n_lane = tile * kCudaTileN + quad * 32 + g;  // + 8 * j

  float acc[kW4A16MaxTokens][4];
#pragma unroll
  for (int i = 0; i < kW4A16MaxTokens; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  int cached_group = -1;
  float scale_lo[4], scale_hi[4];
  uint32_t zp_lo[4], zp_hi[4];

  for (int chunk_k0 = step_begin * kCudaMmaK; chunk_k0 < step_end * kCudaMmaK; chunk_k0 += kChunkK) {
    __syncthreads();  // the previous chunk is no longer read
    for (int i = threadIdx.x; i < p.m * kChunkK; i += kThreads) {
      const int mm = i / kChunkK, kk = chunk_k0 + i % kChunkK;
      xs[mm][i % kChunkK] = kk < p.k ? LoadAsFloat(p.x, p.x_type, (size_t)mm * p.k + kk) : 0.0f;
    }
    __syncthreads();
    const int first = chunk_k0 / kCudaMmaK;
    const int last = min(first + kChunkK / kCudaMmaK, step_end);
    for (int s0 = first; s0 < last; s0 += kAhead) {
      uint4 words[kAhead];
#pragma unroll
      for (int u = 0; u < kAhead; ++u)
        if (s0 + u < last) words[u] = __ldg(wbase + (size_t)(s0 + u) * kStepWords4);
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const int step = s0 + u;
        if (step >= last) break;
        const int kglob = step * kCudaMmaK;
        // Scales and zero points of this lane's 4 channels, reloaded only when the group changes
        // (every step for group size 16, whose two 16-k halves are separate groups).
        const int group_lo = kglob / p.group_size;
        if (group_lo != cached_group) {
          const int group_hi = (kglob + 16) / p.group_size;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const size_t lo = (size_t)group_lo * p.n_padded + n_lane + 8 * j;
            const size_t hi = (size_t)group_hi * p.n_padded + n_lane + 8 * j;
            scale_lo[j] = __ldg(p.scales + lo);
            zp_lo[j] = __ldg(p.zero_points + lo);
            scale_hi[j] = __ldg(p.scales + hi);
            zp_hi[j] = __ldg(p.zero_points + hi);
          }
          cached_group = group_lo == (kglob + 16) / p.group_size ? group_lo : -1;
        }
        const uint32_t w4[4] = {words[u].x, words[u].y, words[u].z, words[u].w};
        float wlo[4][4], whi[4][4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t lo_bytes = w4[j] & 0x0f0f0f0fu, hi_bytes = (w4[j] >> 4) & 0x0f0f0f0fu;
          const uint32_t lo = p.fp4 ? Fp4BytesToInt8x4Times2(lo_bytes) : SubZeroPointBytes(lo_bytes, zp_lo[j]);
          const uint32_t hi = p.fp4 ? Fp4BytesToInt8x4Times2(hi_bytes) : SubZeroPointBytes(hi_bytes, zp_hi[j]);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            wlo[j][i] = Int8x4ByteToFloat(lo, i);
            whi[j][i] = Int8x4ByteToFloat(hi, i);
          }
        }
        const int kl = kglob - chunk_k0 + 4 * t;
#pragma unroll
        for (int mm = 0; mm < kW4A16MaxTokens; ++mm) {
          if (mm >= p.m) break;
          const float4 xl = *reinterpret_cast<const float4*>(&xs[mm][kl]);
          const float4 xh = *reinterpret_cast<const float4*>(&xs[mm][kl + 16]);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float dl = xl.x * wlo[j][0] + xl.y * wlo[j][1] + xl.z * wlo[j][2] + xl.w * wlo[j][3];
            const float dh = xh.x * whi[j][0] + xh.y * whi[j][1] + xh.z * whi[j][2] + xh.w * whi[j][3];
            acc[mm][j] = fmaf(scale_lo[j], dl, fmaf(scale_hi[j], dh, acc[mm][j]));
          }
        }
      }
    }
  }

  // The 4 lanes of a quad row (same g) hold the same channels: butterfly-sum them, then lane t stores
  // tokens t and t + 4.
#pragma unroll
  for (int mm = 0; mm < kW4A16MaxTokens; ++mm)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      acc[mm][j] += __shfl_xor_sync(0xffffffffu, acc[mm][j], 1);
      acc[mm][j] += __shfl_xor_sync(0xffffffffu, acc[mm][j], 2);
    }
#pragma unroll
  for (int mm = 0; mm < kW4A16MaxTokens; ++mm) {
    if (mm >= p.m || (mm & 3) != t) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n_lane + 8 * j;
      if (p.partial) {
        p.partial[((size_t)blockIdx.y * p.m + mm) * p.n_padded + n] = acc[mm][j];
      } else if (n < p.n) {
        StoreFromFloat(p.y, p.y_type, (size_t)mm * p.n + n, acc[mm][j]);
      }
    }
  }
}

// Splits of the k32 steps so that the grid has about 4 blocks per multiprocessor.
int SplitCount(const CudaPackedView& v) {
  const int tiles = v.n_padded / kCudaTileN, steps = v.k_padded / kCudaMmaK;
  const int want = std::max(1, (4 * MultiprocessorCount() + tiles - 1) / tiles);
  const int per_split = std::max(1, (steps + std::min(want, steps) - 1) / std::min(want, steps));
  return (steps + per_split - 1) / per_split;
}

}  // namespace

size_t GemmW4A16WorkspaceBytes(int32_t m, const DeviceWeight& w) {
  const int splits = SplitCount(w.view);
  return splits > 1 ? (size_t)splits * std::max(m, 0) * w.view.n_padded * sizeof(float) : 0;
}

Status GemmW4A16(const void* d_x, DType x_type, int32_t m, const DeviceWeight& w, void* d_y, DType y_type,
                 void* d_workspace, size_t workspace_bytes, void* stream) {
  const CudaPackedView& v = w.view;
  auto valid_type = [](DType t) { return t == DType::kFloat32 || t == DType::kBfloat16 || t == DType::kFloat16; };
  if (!d_x || !d_y || !v.codes || !v.scales || !v.zero_points || m < 1 || m > kW4A16MaxTokens ||
      !valid_type(x_type) || !valid_type(y_type) || v.group_size < kMinGroupSize)
    return Status::kInvalidArgument;
  const int steps = v.k_padded / kCudaMmaK;
  int splits = SplitCount(v);
  if (splits > 1 && (!d_workspace || workspace_bytes < GemmW4A16WorkspaceBytes(m, w))) splits = 1;
  const int per_split = (steps + splits - 1) / splits;
  splits = (steps + per_split - 1) / per_split;
  GemvParams p{d_x, reinterpret_cast<const uint4*>(v.codes), v.scales, v.zero_points,
               splits > 1 ? static_cast<float*>(d_workspace) : nullptr, d_y, m, v.n, v.k, v.n_padded, v.k_padded,
               v.group_size, per_split, x_type, y_type, v.format == WeightFormat::kFp4E2M1};
  cudaStream_t s = AsStream(stream);
  GemvW4A16Kernel<<<dim3(v.n_padded / kCudaTileN, splits), kThreads, 0, s>>>(p);
  W4A8_CUDA_TRY(CheckLaunch());
  if (splits > 1) {
    W4A8_CUDA_TRY(SumSplits(p.partial, splits, m, v.n, v.n_padded, d_y, y_type, s));
  }
  return Status::kOk;
}

}  // namespace w4a8::cuda
