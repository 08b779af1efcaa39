// W4A16 on the packed CPU layout with AVX-512 (formats.h, CpuPackedView): the float-activation path of
// W4A8MatMul after the op prepacked its weight. Compiled with AVX-512 flags.
//
// A packed chunk is one zmm: 16 rows (one per dword lane) x 8 k. Rows in lanes mean no shuffle and no
// horizontal sum: per nibble position p (k = p / 2 + 4 (p % 2) of the chunk) one AND keeps the 16
// nibbles in place, one convert gives q * 2^shift exactly, and one FMA against x[k] * 2^-shift
// (scaled once per call, exact; w4a16_internal.h) adds q * x[k] to 16 rows. fp4 looks its codes up with one permute
// instead. Per K-group the sums are scaled and the zero point's share (zp * s * sum x) taken off, as
// the canonical GEMV does (w4a16_avx512.cpp). Token tiles of up to 8 reuse each decoded vector.
// Past kPackedGemvMaxTokens tokens the weights are dequantized once into fp32 panels instead and the
// canonical path's register tile runs on them (w4a16_panel_avx512.h).
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "w4a16_internal.h"
#include "w4a16_panel_avx512.h"

namespace w4a8::cpu::w4a16 {
namespace {

// 2 x the FP4 E2M1 value of codes 0..15 (the packed layout's u8 weight less its zero of 12).
alignas(64) const float kFp4TimesTwo[16] = {0.f, 1.f, 2.f, 3.f, 4.f, 6.f, 8.f, 12.f, -0.f, -1.f, -2.f, -3.f, -4.f, -6.f, -8.f, -12.f};

template <int MT, bool kFp4>
void PanelTile(const CpuPackedView& v, const PackedActs& acts, int32_t panel, int32_t t0, const float* bias, float* y) {
  const int32_t blocks = v.blocks_per_row, chunks_per_group = v.group_size / kCpuChunkK, kpad = v.k_padded;
  const uint8_t* codes = v.codes + (size_t)panel * (kpad / kCpuChunkK) * kCpuChunkBytes;
  const float* scales = v.scales + (size_t)panel * blocks * kCpuPanelN;
  const uint8_t* zeros = v.zeros + (size_t)panel * blocks * kCpuPanelN;
  const __m512 table = _mm512_load_ps(kFp4TimesTwo);
  const float* xs = acts.scaled + (size_t)t0 * kpad;
  const float* xsum = acts.group_sums + (size_t)t0 * blocks;
  // CH independent sums per token (positions p % CH): with one token, one chain of 8 FMAs per chunk
  // would wait on the FMA latency (4 cycles) each time; 4 chains keep the FMA unit busy.
  constexpr int CH = MT >= 4 ? 1 : MT == 1 ? 4 : 2;
  __m512 acc[MT];
  for (int t = 0; t < MT; ++t) acc[t] = _mm512_setzero_ps();
  for (int32_t b = 0; b < blocks; ++b) {
    __m512 part[MT][CH];
    for (int t = 0; t < MT; ++t)
      for (int c = 0; c < CH; ++c) part[t][c] = _mm512_setzero_ps();
    for (int32_t c = 0; c < chunks_per_group; ++c) {
      const size_t chunk = (size_t)b * chunks_per_group + c;
      const uint8_t* src = codes + chunk * kCpuChunkBytes;
      _mm_prefetch(reinterpret_cast<const char*>(src) + 2048, _MM_HINT_T0);
      const __m512i dw = _mm512_load_si512(src);
      const float* xk = xs + chunk * kCpuChunkK;
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) {
        // int4: the nibble in place (position 7 shifted down 4 bits), q * 2^shift exactly.
        const __m512 w = kFp4 ? _mm512_permutexvar_ps(_mm512_srli_epi32(dw, 4 * p), table)
                              : _mm512_cvtepi32_ps(_mm512_and_si512(p == 7 ? _mm512_srli_epi32(dw, 4) : dw,
                                                                    _mm512_set1_epi32(0xF << kChunkPositionShift[p])));
        const int32_t k = kChunkPositionK[p];
        for (int t = 0; t < MT; ++t) part[t][p % CH] = _mm512_fmadd_ps(w, _mm512_set1_ps(xk[(size_t)t * kpad + k]), part[t][p % CH]);
      }
    }
    for (int t = 0; t < MT; ++t)
      for (int c = 1; c < CH; ++c) part[t][0] = _mm512_add_ps(part[t][0], part[t][c]);
    const __m512 s = _mm512_loadu_ps(scales + (size_t)b * kCpuPanelN);
    for (int t = 0; t < MT; ++t) acc[t] = _mm512_fmadd_ps(part[t][0], s, acc[t]);
    if (!kFp4) {
      const __m128i z8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(zeros + (size_t)b * kCpuPanelN));
      const __m512 zs = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z8)));
      for (int t = 0; t < MT; ++t) acc[t] = _mm512_fnmadd_ps(zs, _mm512_set1_ps(xsum[(size_t)t * blocks + b]), acc[t]);
    }
  }
  const int32_t n0 = panel * kCpuPanelN, rows = std::min(kCpuPanelN, v.n - n0);
  const __mmask16 mask = (__mmask16)((1u << rows) - 1);
  const __m512 vb = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
  for (int t = 0; t < MT; ++t) _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * v.n + n0, mask, _mm512_add_ps(acc[t], vb));
}

template <bool kFp4>
void Panels(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  for (int32_t panel = p0; panel < p1; ++panel) {
    // Token tiles inner: the panel's codes (K / 2 bytes x 16 rows) stay in cache across them.
    int32_t t = 0;
    for (; t + 8 <= m; t += 8) PanelTile<8, kFp4>(v, acts, panel, t, bias, y);
    switch (m - t) {
      case 7: PanelTile<7, kFp4>(v, acts, panel, t, bias, y); break;
      case 6: PanelTile<6, kFp4>(v, acts, panel, t, bias, y); break;
      case 5: PanelTile<5, kFp4>(v, acts, panel, t, bias, y); break;
      case 4: PanelTile<4, kFp4>(v, acts, panel, t, bias, y); break;
      case 3: PanelTile<3, kFp4>(v, acts, panel, t, bias, y); break;
      case 2: PanelTile<2, kFp4>(v, acts, panel, t, bias, y); break;
      case 1: PanelTile<1, kFp4>(v, acts, panel, t, bias, y); break;
      default: break;
    }
  }
}

// Larger M: wt [k - k0][32] = W for the 32 rows of panels pp and pp + 1 (rows of a panel past p1 are
// 0), k in [k0, k0 + kc), dequantized as CpuPackedDequantizeAt does ((q - zp) * scale, one rounding;
// fp4: 2 value * scale / 2), then the shared register tile (w4a16_panel_avx512.h).
void DequantizePanels(const CpuPackedView& v, int32_t pp, int32_t p1, int32_t k0, int32_t kc, float* wt) {
  const int32_t blocks = v.blocks_per_row, gs = v.group_size, chunks = v.k_padded / kCpuChunkK;
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  const __m512 table = _mm512_load_ps(kFp4TimesTwo);
  const __m512i low4 = _mm512_set1_epi32(0xF);
  for (int32_t h = 0; h < 2; ++h) {
    const int32_t panel = pp + h;
    if (panel >= p1) {
      for (int32_t k = 0; k < kc; ++k) _mm512_store_ps(wt + (size_t)k * avx512::kPanelRows + 16 * h, _mm512_setzero_ps());
      continue;
    }
    const uint8_t* codes = v.codes + (size_t)panel * chunks * kCpuChunkBytes;
    const float* scales = v.scales + (size_t)panel * blocks * kCpuPanelN;
    const uint8_t* zeros = v.zeros + (size_t)panel * blocks * kCpuPanelN;
    for (int32_t c = k0 / kCpuChunkK; c * kCpuChunkK < k0 + kc; ++c) {
      const int32_t b = c * kCpuChunkK / gs;
      const __m512 s = _mm512_loadu_ps(scales + (size_t)b * kCpuPanelN);
      const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(zeros + (size_t)b * kCpuPanelN)));
      const __m512i dw = _mm512_load_si512(codes + (size_t)c * kCpuChunkBytes);
      for (int p = 0; p < 8; ++p) {
        const int32_t kk = c * kCpuChunkK + kChunkPositionK[p] - k0;
        if (kk >= kc) continue;  // past K
        const __m512i q = _mm512_and_si512(_mm512_srli_epi32(dw, 4 * p), low4);
        const __m512 w = fp4 ? _mm512_mul_ps(_mm512_permutexvar_ps(q, table), s) : _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), s);
        _mm512_store_ps(wt + (size_t)kk * avx512::kPanelRows + 16 * h, w);
      }
    }
  }
}

bool PanelGemm(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  const int32_t K = v.k, N = v.n;
  float* wt = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * avx512::kPanelRows * avx512::kChunkK));
  if (!wt) return false;
  const int32_t n0 = p0 * kCpuPanelN, n1 = std::min(N, p1 * kCpuPanelN);
  for (int32_t t = 0; t < m; ++t)
    for (int32_t n = n0; n < n1; ++n) y[(size_t)t * N + n] = bias ? bias[n] : 0.f;
  for (int32_t pp = p0; pp < p1; pp += 2) {
    const int32_t rows = std::min(std::min(p1 - pp, 2) * kCpuPanelN, N - pp * kCpuPanelN);
    const __mmask16 m0 = avx512::Lanes(rows), m1 = avx512::Lanes(rows - 16);
    for (int32_t k0 = 0; k0 < K; k0 += avx512::kChunkK) {
      const int32_t kc = std::min(avx512::kChunkK, K - k0);
      DequantizePanels(v, pp, p1, k0, kc, wt);
      avx512::PanelTokens(wt, kc, acts.x + k0, K, y + (size_t)pp * kCpuPanelN, N, m, m0, m1);
    }
  }
  std::free(wt);
  return true;
}

}  // namespace

void PackedPanelsAvx512(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1) {
  // Past kPackedGemvMaxTokens dequantizing once into an fp32 panel beats decoding per token tile; if
  // that panel cannot be allocated the token tiles still do the work.
  if (m > kPackedGemvMaxTokens && PanelGemm(v, acts, m, bias, y, p0, p1)) return;
  if (v.format == WeightFormat::kFp4E2M1) Panels<true>(v, acts, m, bias, y, p0, p1);
  else Panels<false>(v, acts, m, bias, y, p0, p1);
}

}  // namespace w4a8::cpu::w4a16
