// W4A16 on the packed CPU layout with AVX2: w4a16_packed_avx512.cpp's method on 8-lane vectors (a
// 16-row chunk is two ymm). fp4 has no 16-entry permute here: the 3-bit magnitude is looked up with
// an 8-entry permute and the sign bit moved onto the float's. Past kPackedGemvMaxTokensAvx2 tokens each
// panel is dequantized once into fp32 for the canonical path's register tile. Compiled with AVX2 flags.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>

#include "w4a16_internal.h"
#include "w4a16_panel_avx2.h"

namespace w4a8::cpu::w4a16 {
namespace {

// 2 x the FP4 E2M1 magnitude of codes 0..7.
alignas(32) const float kFp4MagTimesTwo[8] = {0.f, 1.f, 2.f, 3.f, 4.f, 6.f, 8.f, 12.f};

template <bool kFp4>
inline __m256 Decode(__m256i dw, int p, __m256 table) {
  if (kFp4) {
    const __m256i code = _mm256_srli_epi32(dw, 4 * p);
    const __m256 mag = _mm256_permutevar8x32_ps(table, code);  // reads the low 3 bits
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(code, _mm256_set1_epi32(8)), 28);
    return _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
  }
  const __m256i src = p == 7 ? _mm256_srli_epi32(dw, 4) : dw;
  return _mm256_cvtepi32_ps(_mm256_and_si256(src, _mm256_set1_epi32(0xF << kChunkPositionShift[p])));
}

template <int MT, bool kFp4>
void PanelTile(const CpuPackedView& v, const PackedActs& acts, int32_t panel, int32_t t0, const float* bias, float* y) {
  const int32_t blocks = v.blocks_per_row, chunks_per_group = v.group_size / kCpuChunkK, kpad = v.k_padded;
  const uint8_t* codes = v.codes + (size_t)panel * (kpad / kCpuChunkK) * kCpuChunkBytes;
  const float* scales = v.scales + (size_t)panel * blocks * kCpuPanelN;
  const uint8_t* zeros = v.zeros + (size_t)panel * blocks * kCpuPanelN;
  const __m256 table = _mm256_load_ps(kFp4MagTimesTwo);
  const float* xs = acts.scaled + (size_t)t0 * kpad;
  const float* xsum = acts.group_sums + (size_t)t0 * blocks;
  // CH independent sums per token and half (positions p % CH): ymm FMAs on two ports with a 4-cycle
  // latency want 8 chains in flight, which one or two tokens alone would not give.
  constexpr int CH = MT == 1 ? 4 : MT == 2 ? 2 : 1;
  __m256 acc[MT][2];
  for (int t = 0; t < MT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int32_t b = 0; b < blocks; ++b) {
    __m256 part[MT][2][CH];
    for (int t = 0; t < MT; ++t)
      for (int c = 0; c < CH; ++c) part[t][0][c] = part[t][1][c] = _mm256_setzero_ps();
    for (int32_t c = 0; c < chunks_per_group; ++c) {
      const size_t chunk = (size_t)b * chunks_per_group + c;
      const uint8_t* src = codes + chunk * kCpuChunkBytes;
      _mm_prefetch(reinterpret_cast<const char*>(src) + 2048, _MM_HINT_T0);
      const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(src));
      const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(src + 32));
      const float* xk = xs + chunk * kCpuChunkK;
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
        const __m256 w0 = Decode<kFp4>(lo, p, table), w1 = Decode<kFp4>(hi, p, table);
        const int32_t k = kChunkPositionK[p];
        for (int t = 0; t < MT; ++t) {
          const __m256 xb = _mm256_broadcast_ss(xk + (size_t)t * kpad + k);
          part[t][0][p % CH] = _mm256_fmadd_ps(w0, xb, part[t][0][p % CH]);
          part[t][1][p % CH] = _mm256_fmadd_ps(w1, xb, part[t][1][p % CH]);
        }
      }
    }
    for (int t = 0; t < MT; ++t)
      for (int h = 0; h < 2; ++h)
        for (int c = 1; c < CH; ++c) part[t][h][0] = _mm256_add_ps(part[t][h][0], part[t][h][c]);
    for (int h = 0; h < 2; ++h) {
      const __m256 s = _mm256_loadu_ps(scales + (size_t)b * kCpuPanelN + 8 * h);
      for (int t = 0; t < MT; ++t) acc[t][h] = _mm256_fmadd_ps(part[t][h][0], s, acc[t][h]);
      if (!kFp4) {
        const __m128i z8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + (size_t)b * kCpuPanelN + 8 * h));
        const __m256 zs = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(z8)));
        for (int t = 0; t < MT; ++t) acc[t][h] = _mm256_fnmadd_ps(zs, _mm256_broadcast_ss(xsum + (size_t)t * blocks + b), acc[t][h]);
      }
    }
  }
  const int32_t n0 = panel * kCpuPanelN, rows = std::min(kCpuPanelN, v.n - n0);
  for (int t = 0; t < MT; ++t) {
    alignas(32) float out[kCpuPanelN];
    _mm256_store_ps(out, acc[t][0]);
    _mm256_store_ps(out + 8, acc[t][1]);
    float* dst = y + (size_t)(t0 + t) * v.n + n0;
    for (int32_t r = 0; r < rows; ++r) dst[r] = out[r] + (bias ? bias[n0 + r] : 0.f);
  }
}

template <bool kFp4>
void Panels(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  for (int32_t panel = p0; panel < p1; ++panel) {
    int32_t t = 0;  // 4 tokens x 2 halves: 8 partial and 8 total accumulators of the 16 ymm
    for (; t + 4 <= m; t += 4) PanelTile<4, kFp4>(v, acts, panel, t, bias, y);
    switch (m - t) {
      case 3: PanelTile<3, kFp4>(v, acts, panel, t, bias, y); break;
      case 2: PanelTile<2, kFp4>(v, acts, panel, t, bias, y); break;
      case 1: PanelTile<1, kFp4>(v, acts, panel, t, bias, y); break;
      default: break;
    }
  }
}

// Larger M: wt [k - k0][16] = W for the panel's 16 rows, k in [k0, k0 + kc), dequantized as
// CpuPackedDequantizeAt does, then the canonical path's register tile (w4a16_panel_avx2.h).
void DequantizePanel(const CpuPackedView& v, int32_t panel, int32_t k0, int32_t kc, float* wt) {
  const int32_t blocks = v.blocks_per_row, gs = v.group_size, chunks = v.k_padded / kCpuChunkK;
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  const __m256 table = _mm256_load_ps(kFp4MagTimesTwo);
  const __m256i low4 = _mm256_set1_epi32(0xF);
  const uint8_t* codes = v.codes + (size_t)panel * chunks * kCpuChunkBytes;
  const float* scales = v.scales + (size_t)panel * blocks * kCpuPanelN;
  const uint8_t* zeros = v.zeros + (size_t)panel * blocks * kCpuPanelN;
  for (int32_t c = k0 / kCpuChunkK; c * kCpuChunkK < k0 + kc; ++c) {
    const int32_t b = c * kCpuChunkK / gs;
    for (int h = 0; h < 2; ++h) {
      const __m256 s = _mm256_loadu_ps(scales + (size_t)b * kCpuPanelN + 8 * h);
      const __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zeros + (size_t)b * kCpuPanelN + 8 * h)));
      const __m256i dw = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes + (size_t)c * kCpuChunkBytes + 32 * h));
      for (int p = 0; p < 8; ++p) {
        const int32_t kk = c * kCpuChunkK + kChunkPositionK[p] - k0;
        if (kk >= kc) continue;  // past K
        const __m256 w = fp4 ? _mm256_mul_ps(Decode<true>(dw, p, table), s)
                             : _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(dw, 4 * p), low4), z)), s);
        _mm256_store_ps(wt + (size_t)kk * avx2::kPanelRows + 8 * h, w);
      }
    }
  }
}

bool PanelGemm(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  const int32_t K = v.k, N = v.n;
  float* wt = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * avx2::kPanelRows * avx2::kChunkK));
  if (!wt) return false;
  const int32_t n0 = p0 * kCpuPanelN, n1 = std::min(N, p1 * kCpuPanelN);
  for (int32_t t = 0; t < m; ++t)
    for (int32_t n = n0; n < n1; ++n) y[(size_t)t * N + n] = bias ? bias[n] : 0.f;
  for (int32_t panel = p0; panel < p1; ++panel) {
    const int32_t rows = std::min(kCpuPanelN, N - panel * kCpuPanelN);
    const __m256i m0 = avx2::Lanes(rows), m1 = avx2::Lanes(rows - 8);
    for (int32_t k0 = 0; k0 < K; k0 += avx2::kChunkK) {
      const int32_t kc = std::min(avx2::kChunkK, K - k0);
      DequantizePanel(v, panel, k0, kc, wt);
      avx2::PanelTokens(wt, kc, acts.x + k0, K, y + (size_t)panel * kCpuPanelN, N, m, rows == kCpuPanelN, m0, m1);
    }
  }
  std::free(wt);
  return true;
}

}  // namespace

void PackedPanelsAvx2(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  if (m > kPackedGemvMaxTokensAvx2 && PanelGemm(v, acts, m, bias, y, p0, p1)) return;
  if (v.format == WeightFormat::kFp4E2M1) Panels<true>(v, acts, m, bias, y, p0, p1);
  else Panels<false>(v, acts, m, bias, y, p0, p1);
}

}  // namespace w4a8::cpu::w4a16
