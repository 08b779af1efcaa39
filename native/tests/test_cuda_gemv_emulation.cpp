// The W4A16 decode kernel's data flow (gemv_w4a16.cu), emulated lane by lane on the CPU with the
// kernel's own index expressions and register helpers: the 16-byte word set of each (quad, lane) per
// k32 step, activation chunks staged in "shared memory", per-half group scales (group size 16 splits
// a step), split-K ranges, the quad butterfly and the split reduction, against a float64 reference.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "w4a8/cuda_bits.h"
#include "w4a8/formats.h"

using namespace w4a8;

namespace {

constexpr int kMaxTokens = 8, kChunkK = 1024, kStepWords4 = 128;
int g_failures = 0;

void RunCase(std::mt19937& rng, WeightFormat fmt, bool asym, int32_t m, int32_t n, int32_t k, int32_t group,
             int32_t splits_wanted) {
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
  std::vector<float> x((size_t)m * k);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& e : x) e = u(rng);

  const bool fp4 = fmt == WeightFormat::kFp4E2M1;
  const int steps = v.k_padded / kCudaMmaK;
  const int per_split = (steps + splits_wanted - 1) / splits_wanted;
  const int splits = (steps + per_split - 1) / per_split;
  std::vector<float> partial((size_t)splits * m * v.n_padded, NAN);
  static float xs[kMaxTokens][kChunkK];

  for (int tile = 0; tile < v.n_padded / kCudaTileN; ++tile)
    for (int split = 0; split < splits; ++split) {
      const int step_begin = split * per_split, step_end = std::min(step_begin + per_split, steps);
      float acc[128][kMaxTokens][4] = {};
      int cached_group[128];
      float scale_lo[128][4], scale_hi[128][4];
      uint32_t zp_lo[128][4], zp_hi[128][4];
      for (int th = 0; th < 128; ++th) cached_group[th] = -1;
      for (int chunk_k0 = step_begin * kCudaMmaK; chunk_k0 < step_end * kCudaMmaK; chunk_k0 += kChunkK) {
        for (int i = 0; i < m * kChunkK; ++i) {
          const int mm = i / kChunkK, kk = chunk_k0 + i % kChunkK;
          xs[mm][i % kChunkK] = kk < k ? x[(size_t)mm * k + kk] : 0.0f;
        }
        const int first = chunk_k0 / kCudaMmaK, last = std::min(first + kChunkK / kCudaMmaK, step_end);
        for (int th = 0; th < 128; ++th) {
          const int lane = th & 31, quad = th >> 5, g = lane >> 2, t = lane & 3;
          const size_t wbase = (size_t)tile * steps * kStepWords4 + quad * 32 + lane;  // in 16-byte units
          const int n_lane = tile * kCudaTileN + quad * 32 + g;
          for (int step = first; step < last; ++step) {
            const uint32_t* w4 = pc.data() + 4 * (wbase + (size_t)step * kStepWords4);
            const int kglob = step * kCudaMmaK;
            const int group_lo = kglob / group;
            if (group_lo != cached_group[th]) {
              const int group_hi = (kglob + 16) / group;
              for (int j = 0; j < 4; ++j) {
                const size_t lo = (size_t)group_lo * v.n_padded + n_lane + 8 * j;
                const size_t hi = (size_t)group_hi * v.n_padded + n_lane + 8 * j;
                scale_lo[th][j] = ps[lo];
                zp_lo[th][j] = pz[lo];
                scale_hi[th][j] = ps[hi];
                zp_hi[th][j] = pz[hi];
              }
              cached_group[th] = group_lo == group_hi ? group_lo : -1;
            }
            float wlo[4][4], whi[4][4];
            for (int j = 0; j < 4; ++j) {
              const uint32_t lo_bytes = w4[j] & 0x0f0f0f0fu, hi_bytes = (w4[j] >> 4) & 0x0f0f0f0fu;
              const uint32_t lo = fp4 ? Fp4BytesToInt8x4Times2(lo_bytes) : SubZeroPointBytes(lo_bytes, zp_lo[th][j]);
              const uint32_t hi = fp4 ? Fp4BytesToInt8x4Times2(hi_bytes) : SubZeroPointBytes(hi_bytes, zp_hi[th][j]);
              for (int i = 0; i < 4; ++i) {
                wlo[j][i] = Int8x4ByteToFloat(lo, i);
                whi[j][i] = Int8x4ByteToFloat(hi, i);
              }
            }
            const int kl = kglob - chunk_k0 + 4 * t;
            for (int mm = 0; mm < m; ++mm)
              for (int j = 0; j < 4; ++j) {
                float dl = 0, dh = 0;
                for (int i = 0; i < 4; ++i) {
                  dl += xs[mm][kl + i] * wlo[j][i];
                  dh += xs[mm][kl + 16 + i] * whi[j][i];
                }
                acc[th][mm][j] = std::fma(scale_lo[th][j], dl, std::fma(scale_hi[th][j], dh, acc[th][mm][j]));
              }
          }
        }
      }
      // Butterfly over the 4 lanes of a quad row, then lane t stores tokens t and t + 4.
      for (int th = 0; th < 128; ++th) {
        const int lane = th & 31, quad = th >> 5, t = lane & 3, base = th - t;
        for (int mm = 0; mm < m; ++mm) {
          if ((mm & 3) != t) continue;
          for (int j = 0; j < 4; ++j) {
            const float sum = (acc[base][mm][j] + acc[base + 1][mm][j]) + (acc[base + 2][mm][j] + acc[base + 3][mm][j]);
            const int nn = tile * kCudaTileN + quad * 32 + (lane >> 2) + 8 * j;
            partial[((size_t)split * m + mm) * v.n_padded + nn] = sum;
          }
        }
      }
    }

  double num = 0, den = 0;
  size_t nonfinite = 0;
  for (int32_t i = 0; i < m; ++i)
    for (int32_t c = 0; c < n; ++c) {
      float y = 0.0f;
      for (int s = 0; s < splits; ++s) y += partial[((size_t)s * m + i) * v.n_padded + c];
      double ref = 0;
      for (int32_t kk = 0; kk < k; ++kk) ref += (double)x[(size_t)i * k + kk] * (double)DequantizeAt(w, c, kk);
      if (!std::isfinite(y)) ++nonfinite;
      num += (y - ref) * (y - ref);
      den += ref * ref;
    }
  const double rel = std::sqrt(num / den);
  if (nonfinite || !(rel < 1e-5)) {
    ++g_failures;
    std::printf("FAIL fmt %d asym %d m=%d n=%d k=%d g=%d splits %d: rel err %.3e, %zu unwritten\n", (int)fmt, asym, m,
                n, k, group, splits, rel, nonfinite);
  }
}

}  // namespace

int main() {
  std::mt19937 rng(1127);
  int cases = 0;
  const struct { WeightFormat f; bool asym; } formats[] = {
      {WeightFormat::kInt4, true}, {WeightFormat::kInt4, false}, {WeightFormat::kFp4E2M1, false}};
  for (const auto& f : formats)
    for (int32_t g : {16, 32, 64, 128, 256})
      for (int32_t m : {1, 3, 8})
        for (int32_t splits : {1, 5}) {
          RunCase(rng, f.f, f.asym, m, 72, 1100, g, splits);  // k past one 1024 chunk, not a tile multiple
          ++cases;
        }
  RunCase(rng, WeightFormat::kInt4, true, 4, 300, 2500, 128, 3);
  ++cases;
  std::printf("%s: %d emulated W4A16 cases, %d failures\n", g_failures ? "FAIL" : "PASS", cases, g_failures);
  return g_failures ? 1 : 0;
}
