// W4A16 with AVX-512 (w4a16_internal.h describes the two paths). Compiled with AVX-512 flags.
#include <immintrin.h>

// GCC 12 flags the undefined-vector idiom inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "w4a16_internal.h"
#include "w4a16_panel_avx512.h"

namespace w4a8::cpu::w4a16 {
namespace {

// FP4 E2M1 values of codes 0..15 (formats.h), looked up with one permute.
alignas(64) const float kFp4Table[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                                         -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

// ---- small M: decode in registers, no panel -------------------------------------------------
// Per group g of row n: s_g * (sum q_k x_k - zp_g * sum x_k) for int4, s_g * sum v(q_k) x_k for fp4, so
// the per-weight work is one convert and one FMA per token; the zero point costs one scalar per group.
// x is first copied per token into `xp` [kpad], zero past K, and for groups of 32 or more each run of
// 32 k is reordered to (16 even k, 16 odd k): then the low nibbles of 16 code bytes line up with the
// first half and the high nibbles with the second, and no byte interleave is needed.

inline __m512 CodesToFloat(__m128i bytes16, bool fp4, __m512 table) {
  const __m512i q = _mm512_cvtepu8_epi32(bytes16);
  return fp4 ? _mm512_permutexvar_ps(q, table) : _mm512_cvtepi32_ps(q);
}

template <int MT, int R>
void GemvBlock(const QuantizedWeight& w, const float* xp, int32_t kpad, const float* xsum, int32_t n0, int32_t rows,
               float* y, int32_t t0, const float* bias) {
  const int32_t gs = w.group_size, blocks = BlocksPerRow(w.k, gs);
  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  const __m512 table = _mm512_load_ps(kFp4Table);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const uint8_t* codes[R];
  for (int r = 0; r < R; ++r) codes[r] = w.codes + (size_t)(n0 + (r < rows ? r : 0)) * blocks * (gs / 2);
  __m512 acc[MT][R];
  float zterm[MT][R];
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < R; ++r) {
      acc[t][r] = _mm512_setzero_ps();
      zterm[t][r] = 0.f;
    }
  for (int32_t b = 0; b < blocks; ++b) {
    const int32_t kb = b * gs;
    __m512 part[MT][R];
    for (int t = 0; t < MT; ++t)
      for (int r = 0; r < R; ++r) part[t][r] = _mm512_setzero_ps();
    if (gs == 16) {  // natural k order: interleave the nibbles of 8 bytes
      __m512 xv[MT];
      for (int t = 0; t < MT; ++t) xv[t] = _mm512_loadu_ps(xp + (size_t)t * kpad + kb);
      for (int r = 0; r < R; ++r) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes[r] + (size_t)b * 8));
        const __m128i lo = _mm_and_si128(bytes, low4), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
        const __m512 q = CodesToFloat(_mm_unpacklo_epi8(lo, hi), fp4, table);
        for (int t = 0; t < MT; ++t) part[t][r] = _mm512_fmadd_ps(q, xv[t], part[t][r]);
      }
    } else {
      for (int32_t j = 0; j < gs; j += 32) {
        __m512 xe[MT], xo[MT];
        for (int t = 0; t < MT; ++t) {
          xe[t] = _mm512_loadu_ps(xp + (size_t)t * kpad + kb + j);
          xo[t] = _mm512_loadu_ps(xp + (size_t)t * kpad + kb + j + 16);
        }
        for (int r = 0; r < R; ++r) {
          const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes[r] + (size_t)b * (gs / 2) + j / 2));
          const __m512 qe = CodesToFloat(_mm_and_si128(bytes, low4), fp4, table);
          const __m512 qo = CodesToFloat(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4), fp4, table);
          for (int t = 0; t < MT; ++t) {
            part[t][r] = _mm512_fmadd_ps(qe, xe[t], part[t][r]);
            part[t][r] = _mm512_fmadd_ps(qo, xo[t], part[t][r]);
          }
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const int32_t n = n0 + (r < rows ? r : 0);
      const float scale = w.scales[(size_t)n * blocks + b];
      const __m512 vs = _mm512_set1_ps(scale);
      const float zs = fp4 ? 0.f : scale * (float)ZeroPointAt(w.zero_points, blocks, n, b);
      for (int t = 0; t < MT; ++t) {
        acc[t][r] = _mm512_fmadd_ps(part[t][r], vs, acc[t][r]);
        zterm[t][r] += zs * xsum[(size_t)t * blocks + b];
      }
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < rows; ++r)
      y[(size_t)(t0 + t) * w.n + n0 + r] = (_mm512_reduce_add_ps(acc[t][r]) - zterm[t][r]) + (bias ? bias[n0 + r] : 0.f);
}

template <int MT, int R>
void GemvRows(const QuantizedWeight& w, const GemmArgs& a, int32_t t0, const float* xp, int32_t kpad, const float* xsum,
              int32_t n0, int32_t n1) {
  for (int32_t nb = n0; nb < n1; nb += R) GemvBlock<MT, R>(w, xp, kpad, xsum, nb, std::min(R, n1 - nb), a.y, t0, a.bias);
}

void Gemv(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  const int32_t blocks = BlocksPerRow(w.k, w.group_size), kpad = blocks * w.group_size;
  std::vector<float> sums(4 * (size_t)blocks), xp(4 * (size_t)kpad);
  for (int32_t t0 = 0; t0 < a.m; t0 += 4) {
    const int32_t mt = std::min(4, a.m - t0);
    GroupSums(w, a.x + (size_t)t0 * w.k, mt, sums.data());
    PermuteForNibbles(w, a.x + (size_t)t0 * w.k, mt, kpad, xp.data());
    switch (mt) {
      case 1: GemvRows<1, 4>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1); break;
      case 2: GemvRows<2, 2>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1); break;
      case 3: GemvRows<3, 1>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1); break;
      default: GemvRows<4, 1>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1); break;
    }
  }
}

// ---- larger M: transposed fp32 panels and the register tile of w4a16_panel_avx512.h -------------
using avx512::kChunkK;
using avx512::kPanelRows;
using avx512::Lanes;

// wt[k - k0][r] = W[nb + r][k] for k in [k0, k0 + kc), r < kPanelRows (rows >= `rows` are 0), decoded
// straight into the transposed order: one gather brings 4 code bytes (8 consecutive k) of 16 rows,
// and nibble e of each gathered dword is k = 8j + e for all 16 rows at once. Same numerics as
// DequantizeAt: (q - zp) * scale in one rounding (fp4: value * scale).
void DequantizeTransposed(const QuantizedWeight& w, int32_t nb, int32_t rows, int32_t k0, int32_t kc, float* wt) {
  const int32_t gs = w.group_size, blocks = BlocksPerRow(w.k, gs), row_bytes = blocks * (gs / 2);
  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  const __m512 table = _mm512_load_ps(kFp4Table);
  const __m512i low4 = _mm512_set1_epi32(0x0f);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int32_t h = 0; h < kPanelRows / 16; ++h) {
    const int32_t r0 = 16 * h, valid = std::max(0, std::min(16, rows - r0));
    if (valid == 0) {
      for (int32_t k = 0; k < kc; ++k) _mm512_store_ps(wt + (size_t)k * kPanelRows + r0, _mm512_setzero_ps());
      continue;
    }
    const __mmask16 mask = (__mmask16)((1u << valid) - 1);
    const __m512i code_offset = _mm512_mullo_epi32(lane, _mm512_set1_epi32(row_bytes));
    const __m512i scale_offset = _mm512_mullo_epi32(lane, _mm512_set1_epi32(blocks));
    const uint8_t* codes = w.codes + (size_t)(nb + r0) * row_bytes;
    const float* scales = w.scales + (size_t)(nb + r0) * blocks;
    for (int32_t b = k0 / gs; b < (k0 + kc + gs - 1) / gs; ++b) {
      const __m512 vs = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, scale_offset, scales + b, 4);
      alignas(64) int32_t zp[16] = {};
      if (!fp4)
        for (int32_t i = 0; i < valid; ++i) zp[i] = ZeroPointAt(w.zero_points, blocks, nb + r0 + i, b);
      const __m512i vzp = _mm512_load_si512(zp);
      for (int32_t j = 0; j < gs / 8; ++j) {
        const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, code_offset,
                                                       codes + (size_t)b * (gs / 2) + 4 * j, 1);
        const int32_t kk0 = b * gs + 8 * j - k0;  // k - k0 of nibble 0
        for (int e = 0; e < 8; ++e) {
          if (kk0 + e >= kc) break;  // past K in the last group
          const __m512i q = _mm512_and_si512(_mm512_srli_epi32(dw, 4 * e), low4);
          const __m512 v = fp4 ? _mm512_mul_ps(_mm512_permutexvar_ps(q, table), vs)
                               : _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzp)), vs);
          _mm512_store_ps(wt + (size_t)(kk0 + e) * kPanelRows + r0, v);
        }
      }
    }
  }
}

bool PanelGemm(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  const int32_t K = w.k;
  float* wt = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kPanelRows * kChunkK));
  if (!wt) return false;
  for (int32_t t = 0; t < a.m; ++t)
    for (int32_t n = n0; n < n1; ++n) a.y[(size_t)t * w.n + n] = a.bias ? a.bias[n] : 0.f;
  for (int32_t nb = n0; nb < n1; nb += kPanelRows) {
    const int32_t rows = std::min(kPanelRows, n1 - nb);
    const __mmask16 m0 = Lanes(rows), m1 = Lanes(rows - 16);
    for (int32_t k0 = 0; k0 < K; k0 += kChunkK) {
      const int32_t kc = std::min(kChunkK, K - k0);
      DequantizeTransposed(w, nb, rows, k0, kc, wt);
      const float* x = a.x + k0;
      float* y = a.y + nb;
      avx512::PanelTokens(wt, kc, x, K, y, w.n, a.m, m0, m1);
    }
  }
  std::free(wt);
  return true;
}

}  // namespace

bool RowsAvx512(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  if (a.m <= kGemvMaxTokensAvx512) {
    Gemv(w, a, n0, n1);
    return true;
  }
  return PanelGemm(w, a, n0, n1);
}

}  // namespace w4a8::cpu::w4a16
