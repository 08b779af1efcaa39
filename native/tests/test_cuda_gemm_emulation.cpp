// The W4A8 GEMM kernel's data flow (gemm_w4a8.cu), emulated lane by lane on the CPU with the same
// geometry helpers the kernel uses (cuda_bits.h) and the PTX definitions of ldmatrix.x4 and
// mma.m16n8k32.s8: swizzled shared-memory tiles, fragment registers, in-register int4/fp4 unpacking,
// per-group flushes, split-K ranges, the epilogue and the split reduction, against a float64
// reference. It runs without a GPU, so the kernel's indexing is checked in every CI run; the GPU
// tests (cuda_test_w4a8_gemm) then check the hardware against the same reference.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "w4a8/cuda_bits.h"
#include "w4a8/formats.h"

using namespace w4a8;

namespace {

int g_failures = 0;

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
int8_t Byte(uint32_t v, int i) { return (int8_t)(uint8_t)(v >> (8 * i)); }

struct Lane {
  uint32_t a[4][4];      // [mi][reg]
  uint32_t b[4][2];      // [j][reg]
  int32_t acc[4][4][4];  // [mi][j][r]
  float out[4][4][4];
  uint32_t zp[4], zp_next[4];
  float scale[4][2], scale_next[4][2];
};

// mma.sync.m16n8k32.row.col.s32.s8.s8.s32 on one warp (PTX fragment definitions):
//   A (row, k): lane (row % 8) * 4 + (k % 16) / 4, register (row / 8) + 2 * (k / 16), byte k % 4
//   B (k, col): lane col * 4 + (k % 16) / 4, register k / 16, byte k % 4
//   C (row, col): lane (row % 8) * 4 + col / 2, element (row / 8) * 2 + col % 2
void WarpMma(Lane* lanes, int mi, int j) {
  int32_t d[16][8] = {};
  for (int row = 0; row < 16; ++row)
    for (int col = 0; col < 8; ++col) {
      int32_t s = 0;
      for (int k = 0; k < 32; ++k) {
        const int8_t a = Byte(lanes[(row % 8) * 4 + (k % 16) / 4].a[mi][(row / 8) + 2 * (k / 16)], k % 4);
        const int8_t b = Byte(lanes[col * 4 + (k % 16) / 4].b[j][k / 16], k % 4);
        s += a * b;
      }
      d[row][col] = s;
    }
  for (int l = 0; l < 32; ++l)
    for (int r = 0; r < 4; ++r) lanes[l].acc[mi][j][r] += d[MmaAccRow(l, r)][MmaAccCol(l, r)];
}

// ldmatrix.x4: lanes 8q..8q+7 give the row addresses of matrix q; lane L receives 4 bytes of row L / 4
// of matrix q, starting at byte (L % 4) * 4 of that row's 16.
void LdMatrix(const uint8_t* smem, const int (&row_address)[32], Lane* lanes, int mi) {
  for (int l = 0; l < 32; ++l)
    for (int q = 0; q < 4; ++q) lanes[l].a[mi][q] = Load32(smem + row_address[8 * q + l / 4] + (l % 4) * 4);
}

void RunCase(std::mt19937& rng, WeightFormat fmt, bool asym, int32_t m, int32_t n, int32_t k, int32_t group,
             int32_t sms, bool workspace) {
  // Weights and their prepack.
  std::vector<uint8_t> codes(CodeBytes(n, k, group)), zps(ZeroPointBytes(n, k, group));
  std::vector<float> scales(ScaleCount(n, k, group));
  for (auto& c : codes) c = (uint8_t)rng();
  for (auto& z : zps) z = (uint8_t)rng();
  for (auto& s : scales) s = 0.002f + 0.03f * (float)(rng() % 1000) / 1000.0f;
  const QuantizedWeight w{fmt, n, k, group, codes.data(), scales.data(), asym ? zps.data() : nullptr};
  CudaPackedView v = CudaPackedShape(fmt, n, k, group);
  std::vector<uint32_t> pc(CudaPackedCodeWords(v));
  std::vector<float> ps(CudaPackedScaleCount(v));
  std::vector<uint8_t> pz(CudaPackedScaleCount(v));
  PackWeightForCuda(w, pc.data(), ps.data(), pz.data());
  const uint8_t* packed = reinterpret_cast<const uint8_t*>(pc.data());

  // Activations: int8 rows of stride k_padded; the padding holds garbage (padded weights are 0).
  const int32_t ldq = v.k_padded;
  std::vector<int8_t> xq((size_t)m * ldq);
  std::vector<float> xs(m);
  for (auto& q : xq) q = (int8_t)((int)(rng() % 255) - 127);
  for (auto& s : xs) s = 0.001f + 0.01f * (float)(rng() % 1000) / 1000.0f;

  GemmLaunchShape shape = W4A8GemmLaunchShape(m, v, sms);
  if (!workspace) shape = {shape.block_rows, 1, v.k_padded / kCudaTileK};
  const int warps_m = shape.block_rows == 16 ? 1 : 2, mis = shape.block_rows / (16 * warps_m);
  const int n_tiles = v.n_padded / kCudaTileN, m_tiles = (m + shape.block_rows - 1) / shape.block_rows;
  const int k_tiles_total = v.k_padded / kCudaTileK;
  std::vector<float> partial((size_t)shape.splits * m * v.n_padded, NAN);
  std::vector<uint8_t> sa((size_t)shape.block_rows * 64), sb(4096);

  for (int bz = 0; bz < shape.splits; ++bz)
    for (int by = 0; by < m_tiles; ++by)
      for (int bx = 0; bx < n_tiles; ++bx) {
        const int kt_begin = bz * shape.tiles_per_split;
        const int kt_end = std::min(kt_begin + shape.tiles_per_split, k_tiles_total);
        const int k_begin = kt_begin * kCudaTileK, k_end = kt_end * kCudaTileK;
        const int n0 = bx * kCudaTileN, m0 = by * shape.block_rows;
        std::vector<Lane> warps((size_t)warps_m * 4 * 32);
        for (auto& l : warps) {
          std::memset(l.acc, 0, sizeof(l.acc));
          for (auto& a : l.out)
            for (auto& b : a)
              for (auto& c : b) c = 0.0f;
        }
        for (int kt = kt_begin; kt < kt_end; ++kt) {
          // The stage as cp.async leaves it: swizzled A rows (zeros past m) and the contiguous B tile.
          for (int r = 0; r < shape.block_rows; ++r)
            for (int c = 0; c < 4; ++c) {
              uint8_t* dst = sa.data() + GemmASharedOffset(r, c);
              if (m0 + r < m) {
                std::memcpy(dst, xq.data() + (size_t)(m0 + r) * ldq + kt * 64 + c * 16, 16);
              } else {
                std::memset(dst, 0, 16);
              }
            }
          std::memcpy(sb.data(), packed + ((size_t)bx * (v.k_padded / kCudaMmaK) + (size_t)kt * 2) * 2048, 4096);
          for (int s = 0; s < 2; ++s) {
            const int kglob = kt * 64 + s * 32;
            for (int warp = 0; warp < warps_m * 4; ++warp) {
              Lane* lanes = &warps[(size_t)warp * 32];
              const int wn = warp % 4, wm = warp / 4;
              for (int mi = 0; mi < mis; ++mi) {
                int addr[32];
                for (int l = 0; l < 32; ++l)
                  addr[l] = GemmASharedOffset(wm * mis * 16 + mi * 16 + LdMatrixRowOfLane(l), LdMatrixChunkOfLane(l, s));
                LdMatrix(sa.data(), addr, lanes, mi);
              }
              auto fetch_group = [&](int grp, bool next) {
                grp = std::min(grp, v.groups_padded - 1);
                for (int l = 0; l < 32; ++l)
                  for (int j = 0; j < 4; ++j) {
                    const size_t base = (size_t)grp * v.n_padded + n0 + wn * 32 + j * 8;
                    (next ? lanes[l].zp_next : lanes[l].zp)[j] = pz[base + l / 4];
                    (next ? lanes[l].scale_next : lanes[l].scale)[j][0] = ps[base + MmaAccCol(l, 0)];
                    (next ? lanes[l].scale_next : lanes[l].scale)[j][1] = ps[base + MmaAccCol(l, 0) + 1];
                  }
              };
              auto load_group = [&](int grp) { fetch_group(grp, false); };
              // The kernel's prefetch: the first group of a split loads now, later ones were fetched ahead.
              auto start_group = [&](int grp, bool first) {
                if (first) {
                  fetch_group(grp, false);
                } else {
                  for (int l = 0; l < 32; ++l) {
                    std::memcpy(lanes[l].zp, lanes[l].zp_next, sizeof(lanes[l].zp));
                    std::memcpy(lanes[l].scale, lanes[l].scale_next, sizeof(lanes[l].scale));
                  }
                }
                fetch_group(grp + 1, true);
              };
              auto unpack = [&](int zero_half) {
                for (int l = 0; l < 32; ++l)
                  for (int j = 0; j < 4; ++j) {
                    const uint32_t word = Load32(sb.data() + GemmBSharedOffset(s, wn, l) + 4 * j);
                    const Int8x4Pair p = fmt == WeightFormat::kFp4E2M1 ? UnpackFp4Word(word) : UnpackInt4Word(word, lanes[l].zp[j]);
                    lanes[l].b[j][0] = zero_half == 0 ? 0u : p.lo;
                    lanes[l].b[j][1] = zero_half == 1 ? 0u : p.hi;
                  }
              };
              auto mma_all = [&] {
                for (int mi = 0; mi < mis; ++mi)
                  for (int j = 0; j < 4; ++j) WarpMma(lanes, mi, j);
              };
              auto flush = [&] {
                for (int l = 0; l < 32; ++l)
                  for (int mi = 0; mi < mis; ++mi)
                    for (int j = 0; j < 4; ++j)
                      for (int r = 0; r < 4; ++r) {
                        const float isum = group * 127 * 15 < kSmallIntToFloatLimit ? SmallIntToFloat(lanes[l].acc[mi][j][r])
                                                                                     : (float)lanes[l].acc[mi][j][r];
                        lanes[l].out[mi][j][r] = std::fma(lanes[l].scale[j][r & 1], isum, lanes[l].out[mi][j][r]);
                        lanes[l].acc[mi][j][r] = 0;
                      }
              };
              if (group >= kCudaMmaK) {
                if (GemmGroupStarts(kglob, group, k_begin)) start_group(kglob / group, kglob == k_begin);
                unpack(-1);
                mma_all();
                if (GemmGroupEnds(kglob, group, k_end)) flush();
              } else {
                for (int h = 0; h < 2; ++h) {
                  load_group(kglob / 16 + h);
                  unpack(1 - h);
                  mma_all();
                  flush();
                }
              }
            }
          }
        }
        // Epilogue into the split's partial sums (the unsplit kernel writes y the same way).
        for (int warp = 0; warp < warps_m * 4; ++warp)
          for (int l = 0; l < 32; ++l)
            for (int mi = 0; mi < mis; ++mi)
              for (int half = 0; half < 2; ++half) {
                const int mm = m0 + (warp / 4) * mis * 16 + mi * 16 + MmaAccRow(l, 2 * half);
                if (mm >= m) continue;
                for (int j = 0; j < 4; ++j)
                  for (int e = 0; e < 2; ++e) {
                    const int nn = n0 + (warp % 4) * 32 + j * 8 + MmaAccCol(l, e);
                    partial[((size_t)bz * m + mm) * v.n_padded + nn] = warps[(size_t)warp * 32 + l].out[mi][j][half * 2 + e] * xs[mm];
                  }
              }
      }

  double num = 0, den = 0;
  size_t nonfinite = 0;
  for (int32_t i = 0; i < m; ++i)
    for (int32_t c = 0; c < n; ++c) {
      float y = 0.0f;
      for (int s = 0; s < shape.splits; ++s) y += partial[((size_t)s * m + i) * v.n_padded + c];
      double ref = 0;
      for (int32_t kk = 0; kk < k; ++kk) ref += (double)xq[(size_t)i * ldq + kk] * (double)DequantizeAt(w, c, kk);
      ref *= xs[i];
      if (!std::isfinite(y)) ++nonfinite;
      num += (y - ref) * (y - ref);
      den += ref * ref;
    }
  const double rel = std::sqrt(num / den);
  if (nonfinite || !(rel < 1e-5)) {
    ++g_failures;
    std::printf("FAIL fmt %d asym %d m=%d n=%d k=%d g=%d rows %d splits %d: rel err %.3e, %zu unwritten\n", (int)fmt,
                asym, m, n, k, group, shape.block_rows, shape.splits, rel, nonfinite);
  }
}

}  // namespace

int main() {
  std::mt19937 rng(20261127);
  int cases = 0;
  const struct { WeightFormat f; bool asym; } formats[] = {
      {WeightFormat::kInt4, true}, {WeightFormat::kInt4, false}, {WeightFormat::kFp4E2M1, false}};
  for (const auto& f : formats)
    for (int32_t g : {16, 32, 64, 128, 256})
      for (int32_t m : {1, 5, 17}) {
        RunCase(rng, f.f, f.asym, m, 72, 1000, g, 132, true);  // BM 16/64, split-K (some splits inside a group)
        RunCase(rng, f.f, f.asym, m, 72, 160, g, 132, false);  // unsplit, k not a tile multiple
        cases += 2;
      }
  // The 128-row tile (chosen when it still fills the SMs: pretend there are 2), and m across tiles.
  RunCase(rng, WeightFormat::kInt4, true, 130, 200, 300, 64, 2, true);
  RunCase(rng, WeightFormat::kFp4E2M1, false, 40, 136, 200, 32, 2, true);
  cases += 2;
  std::printf("%s: %d emulated W4A8 GEMM cases, %d failures\n", g_failures ? "FAIL" : "PASS", cases, g_failures);
  return g_failures ? 1 : 0;
}
