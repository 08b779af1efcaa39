// W4A8 GEMM on tensor cores: int8 per-token activations x 4-bit weights (Mma8x32 layout, formats.h).
//
// Design (version 1, mma.sync; a wgmma + TMA version is future work):
// - Block tile BM x 128 (n) x 64 (k), 4 warps along n (32 channels each) and 1-2 along m; a 4-stage
//   cp.async pipeline brings the int8 A tile (rows past m zero-filled) and the packed B tile (4 KB,
//   contiguous in the layout) into shared memory.
// - A fragments come from ldmatrix.x4 over a 64-byte-row tile whose 16-byte chunks are XOR-swizzled by
//   (row / 2) % 4, which makes the 8 row addresses of each ldmatrix phase hit distinct banks.
// - B: one 16-byte shared load per lane per k32 step gives 4 packed words = the B fragments of 4 n8
//   MMAs; cuda_bits.h turns each word into two int8x4 registers with the zero point already
//   subtracted (q - zp in -15..15, exact), or 2*value for fp4. No activation row sums are needed.
// - Per K-group the int32 accumulators are flushed into fp32: acc += w_scale[n][g] * isum (exact
//   int32 -> fp32 since |isum| < 2^23); the per-token scale multiplies once in the epilogue.
//   Group size 16 is half an MMA: its k32 step runs as two MMAs with the other half of B zeroed.
#include <algorithm>

#include "cuda_common.cuh"
#include "w4a8/cuda_bits.h"

namespace w4a8::cuda {
namespace {

constexpr int kStages = 4;
constexpr int kBK = kCudaTileK;   // 64
constexpr int kBN = kCudaTileN;   // 128
constexpr int kWarpsN = 4;        // each warp: 32 channels = 4 n8 MMAs
constexpr int kBStageBytes = kBN * kBK / 2;
constexpr int kStepBytes = kBStageBytes / (kBK / kCudaMmaK);  // packed bytes of one k32 step of a tile

struct GemmParams {
  const int8_t* xq;
  const float* x_scales;
  const uint32_t* codes;
  const float* scales;
  const uint8_t* zero_points;
  void* y;
  float* partial;  // split-K: [splits][m][n_padded] fp32, or null (no split: write y)
  int32_t ldq, m, n, n_padded, k_padded, group_size, group_shift;  // group_size = 1 << group_shift
  int32_t tiles_per_split;                                           // 64-k tiles per blockIdx.z
  DType y_type;
  bool fp4;
};

template <int kWarpsM, int kMI>
struct TileConfig {
  static constexpr int kBM = kWarpsM * kMI * 16;
  static constexpr int kThreads = kWarpsM * kWarpsN * 32;
  static constexpr int kAStageBytes = kBM * kBK;
  static constexpr int kStageBytes = kAStageBytes + kBStageBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes;
};


template <int kWarpsM, int kMI>
__global__ void __launch_bounds__(TileConfig<kWarpsM, kMI>::kThreads)
    GemmW4A8Kernel(const GemmParams p) {
  using Cfg = TileConfig<kWarpsM, kMI>;
  extern __shared__ __align__(128) uint8_t smem[];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wn = warp % kWarpsN, wm = warp / kWarpsN;
  const int g = lane >> 2;  // the B fragment column (channel) of this lane
  const int n0 = blockIdx.x * kBN;
  const int m0 = blockIdx.y * Cfg::kBM;
  const int kt_begin = blockIdx.z * p.tiles_per_split;
  const int kt_end = min(kt_begin + p.tiles_per_split, p.k_padded / kBK);
  const int k_tiles = kt_end - kt_begin;
  const int k_begin = kt_begin * kBK, k_end = kt_end * kBK;
  const uint8_t* b_tile0 = reinterpret_cast<const uint8_t*>(p.codes) + (size_t)blockIdx.x * (p.k_padded / kCudaMmaK) * kStepBytes;

  auto load_tile = [&](int stage, int kt) {
    uint8_t* sa = smem + stage * Cfg::kStageBytes;
    uint8_t* sb = sa + Cfg::kAStageBytes;
    for (int i = threadIdx.x; i < Cfg::kBM * 4; i += Cfg::kThreads) {
      const int r = i >> 2, c = i & 3, gm = m0 + r;
      const bool in = gm < p.m;
      const int8_t* src = p.xq + (size_t)(in ? gm : 0) * p.ldq + kt * kBK + c * 16;
      CpAsync16(sa + GemmASharedOffset(r, c), src, in ? 16 : 0);
    }
    const uint8_t* bsrc = b_tile0 + (size_t)kt * kBStageBytes;
    for (int i = threadIdx.x; i < kBStageBytes / 16; i += Cfg::kThreads) CpAsync16(sb + i * 16, bsrc + i * 16, 16);
  };

  int32_t acc[kMI][4][4];
  float out[kMI][4][4];
#pragma unroll
  for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        acc[mi][j][r] = 0;
        out[mi][j][r] = 0.0f;
      }

  // Zero points (this lane's 4 B-fragment channels) and scales (its 4 x 2 accumulator columns) of the
  // current K-group, and of the next one, loaded a whole group ahead so that no warp waits for them.
  const int groups = (p.k_padded + p.group_size - 1) >> p.group_shift;
  uint32_t zp[4], zp_next[4];
  float2 wscale[4], wscale_next[4];
  auto fetch_group = [&](int group, uint32_t (&z)[4], float2 (&sc)[4]) {
    const size_t base = (size_t)min(group, groups - 1) * p.n_padded + n0 + wn * 32;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      z[j] = (uint32_t)__ldg(p.zero_points + base + j * 8 + g);
      sc[j] = __ldg(reinterpret_cast<const float2*>(p.scales + base + j * 8 + MmaAccCol(lane, 0)));
    }
  };
  auto load_group = [&](int group) { fetch_group(group, zp, wscale); };
  // At a group start: the first group of this split is loaded now, later ones were prefetched.
  auto start_group = [&](int group, bool first) {
    if (first) {
      fetch_group(group, zp, wscale);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        zp[j] = zp_next[j];
        wscale[j] = wscale_next[j];
      }
    }
    fetch_group(group + 1, zp_next, wscale_next);  // clamped to the last group at the end
  };
  // Group sums convert with add/subtract instead of I2F (quarter rate: at g = 128 it would cost as much
  // issue time as the MMAs); huge per-channel groups, whose sums may pass 2^22, take the exact I2F.
  const bool small_groups = p.group_size * 127 * 15 < kSmallIntToFloatLimit;
  auto flush = [&]() {
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const float isum = small_groups ? SmallIntToFloat(acc[mi][j][r]) : (float)acc[mi][j][r];
          out[mi][j][r] = fmaf((r & 1) ? wscale[j].y : wscale[j].x, isum, out[mi][j][r]);
          acc[mi][j][r] = 0;
        }
  };
  auto mma_all = [&](const uint32_t (&a)[kMI][4], const uint32_t (&b)[4][2]) {
#pragma unroll
    for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
      for (int j = 0; j < 4; ++j) MmaS8(acc[mi][j], a[mi], b[j][0], b[j][1]);
  };
  auto unpack = [&](const uint32_t (&words)[4], uint32_t (&b)[4][2]) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const Int8x4Pair pr = p.fp4 ? UnpackFp4Word(words[j]) : UnpackInt4Word(words[j], zp[j]);
      b[j][0] = pr.lo;
      b[j][1] = pr.hi;
    }
  };

  // i counts this block's tiles (stage = i % kStages); tile kt_begin + i sits at k = 64 * (kt_begin + i).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_tile(s, kt_begin + s);
    CpAsyncCommit();
  }

  for (int i = 0; i < k_tiles; ++i) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();  // tile i visible to all; everyone is done with the stage refilled below
    if (i + kStages - 1 < k_tiles) load_tile((i + kStages - 1) % kStages, kt_begin + i + kStages - 1);
    CpAsyncCommit();

    const uint8_t* sa = smem + (i % kStages) * Cfg::kStageBytes;
    const uint8_t* sb = sa + Cfg::kAStageBytes;
#pragma unroll
    for (int s = 0; s < kBK / kCudaMmaK; ++s) {
      const int kglob = (kt_begin + i) * kBK + s * kCudaMmaK;
      uint32_t a[kMI][4];
#pragma unroll
      for (int mi = 0; mi < kMI; ++mi) {
        const int r = wm * kMI * 16 + mi * 16 + LdMatrixRowOfLane(lane);
        LdMatrixX4(a[mi], sa + GemmASharedOffset(r, LdMatrixChunkOfLane(lane, s)));
      }
      const uint4 bw = *reinterpret_cast<const uint4*>(sb + GemmBSharedOffset(s, wn, lane));
      const uint32_t words[4] = {bw.x, bw.y, bw.z, bw.w};
      uint32_t b[4][2];
      if (p.group_size >= kCudaMmaK) {
        // A split may start or end inside a group: its part of the group is flushed on its own.
        if (GemmGroupStarts(kglob, p.group_size, k_begin)) start_group(kglob >> p.group_shift, kglob == k_begin);
        unpack(words, b);
        mma_all(a, b);
        if (GemmGroupEnds(kglob, p.group_size, k_end)) flush();
      } else {
        // Group size 16: k 0-15 of the step (register b0) and k 16-31 (b1) belong to two groups.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          load_group(kglob / 16 + h);
          unpack(words, b);
#pragma unroll
          for (int j = 0; j < 4; ++j) b[j][1 - h] = 0u;
          mma_all(a, b);
          flush();
        }
      }
    }
  }
  CpAsyncWait<0>();

  // Epilogue: one per-token scale, guarded stores (m and n need not be tile multiples).
#pragma unroll
  for (int mi = 0; mi < kMI; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int m = m0 + wm * kMI * 16 + mi * 16 + MmaAccRow(lane, 2 * half);
      if (m >= p.m) continue;
      const float xs = __ldg(p.x_scales + m);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int n = n0 + wn * 32 + j * 8 + MmaAccCol(lane, e);
          const float v = out[mi][j][half * 2 + e] * xs;
          if (p.partial) {
            p.partial[((size_t)blockIdx.z * p.m + m) * p.n_padded + n] = v;
          } else if (n < p.n) {
            StoreFromFloat(p.y, p.y_type, (size_t)m * p.n + n, v);
          }
        }
      }
    }
  }
}

template <int kWarpsM, int kMI>
Status Launch(const GemmParams& p, cudaStream_t stream) {
  using Cfg = TileConfig<kWarpsM, kMI>;
  auto kernel = GemmW4A8Kernel<kWarpsM, kMI>;
  // Once per process (a host call per launch would show in the timings of small launches).
  static const cudaError_t attribute =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  W4A8_CUDA_TRY(CheckCall(attribute));
  const dim3 grid(p.n_padded / kBN, (p.m + Cfg::kBM - 1) / Cfg::kBM,
                  (p.k_padded / kBK + p.tiles_per_split - 1) / p.tiles_per_split);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return CheckLaunch();
}


}  // namespace

size_t GemmW4A8WorkspaceBytes(int32_t m, const DeviceWeight& w) {
  if (m < 1 || !w.view.n_padded) return 0;
  const int32_t splits = W4A8GemmLaunchShape(m, w.view, MultiprocessorCount()).splits;
  return splits > 1 ? (size_t)splits * m * w.view.n_padded * sizeof(float) : 0;
}

Status GemmW4A8(const int8_t* d_xq, int32_t ldq, const float* d_x_scales, int32_t m, const DeviceWeight& w,
                void* d_y, DType y_type, void* d_workspace, size_t workspace_bytes, void* stream) {
  const CudaPackedView& v = w.view;
  if (!d_xq || !d_x_scales || !d_y || !v.codes || !v.scales || !v.zero_points || m < 1 || m > 65535 * 16 ||
      ldq < v.k_padded || ldq % 16 != 0 || (reinterpret_cast<uintptr_t>(d_xq) & 15) != 0 ||
      v.group_size < kMinGroupSize || (v.group_size & (v.group_size - 1)) != 0)
    return Status::kInvalidArgument;
  if (y_type != DType::kFloat32 && y_type != DType::kBfloat16 && y_type != DType::kFloat16)
    return Status::kInvalidArgument;
  GemmLaunchShape shape = W4A8GemmLaunchShape(m, v, MultiprocessorCount());
  if (shape.splits > 1 && (!d_workspace || workspace_bytes < GemmW4A8WorkspaceBytes(m, w))) {
    shape.splits = 1;
    shape.tiles_per_split = v.k_padded / kBK;
  }
  const int32_t splits = shape.splits, per_split = shape.tiles_per_split;
  GemmParams p{d_xq, d_x_scales, v.codes, v.scales, v.zero_points, d_y,
               splits > 1 ? static_cast<float*>(d_workspace) : nullptr, ldq, m, v.n, v.n_padded, v.k_padded,
               v.group_size, __builtin_ctz((unsigned)v.group_size), per_split, y_type,
               v.format == WeightFormat::kFp4E2M1};
  cudaStream_t s = AsStream(stream);
  if (shape.block_rows == 16) {
    W4A8_CUDA_TRY((Launch<1, 1>(p, s)));
  } else if (shape.block_rows == 128) {
    W4A8_CUDA_TRY((Launch<2, 4>(p, s)));
  } else {
    W4A8_CUDA_TRY((Launch<2, 2>(p, s)));
  }
  if (splits > 1) W4A8_CUDA_TRY(SumSplits(p.partial, splits, m, v.n, v.n_padded, d_y, y_type, s));
  return Status::kOk;
}

}  // namespace w4a8::cuda
