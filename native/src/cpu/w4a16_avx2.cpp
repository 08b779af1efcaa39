// W4A16 with AVX2 + FMA: the AVX-512 design (w4a16_avx512.cpp) at 8 lanes with smaller register
// tiles (16 ymm registers). Compiled with AVX2 flags (file name).
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "w4a16_internal.h"
#include "w4a16_panel_avx2.h"

namespace w4a8::cpu::w4a16 {
namespace {

// FP4 E2M1 magnitudes of codes 0..7; bit 3 of the code is the sign (formats.h).
alignas(32) const float kFp4Magnitude[8] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};

inline __m256 Dequantize8(__m256i q, const QuantizedWeight& w, __m256 vs, __m256i vzp, __m256 table) {
  if (w.format == WeightFormat::kFp4E2M1) {
    const __m256 mag = _mm256_permutevar8x32_ps(table, _mm256_and_si256(q, _mm256_set1_epi32(7)));
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(q, _mm256_set1_epi32(8)), 28);
    return _mm256_mul_ps(_mm256_xor_ps(mag, _mm256_castsi256_ps(sign)), vs);
  }
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, vzp)), vs);
}

// Blocks [b0, b1) of row n dequantized exactly as DequantizeAt does, into out[(b - b0) * group_size + j].
void DequantizeBlocks(const QuantizedWeight& w, int32_t n, int32_t b0, int32_t b1, float* out) {
  const int32_t gs = w.group_size, blocks = BlocksPerRow(w.k, gs);
  const uint8_t* codes = w.codes + (size_t)n * blocks * (gs / 2);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m256 table = _mm256_load_ps(kFp4Magnitude);
  for (int32_t b = b0; b < b1; ++b) {
    const __m256 vs = _mm256_set1_ps(w.scales[(size_t)n * blocks + b]);
    const __m256i vzp = _mm256_set1_epi32(ZeroPointAt(w.zero_points, blocks, n, b));
    const uint8_t* g = codes + (size_t)b * (gs / 2);
    float* dst = out + (size_t)(b - b0) * gs;
    for (int32_t j = 0; j < gs; j += 16) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + j / 2));
      const __m128i lo = _mm_and_si128(bytes, low4);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
      const __m128i q16 = _mm_unpacklo_epi8(lo, hi);  // 16 codes in natural k order
      _mm256_storeu_ps(dst + j, Dequantize8(_mm256_cvtepu8_epi32(q16), w, vs, vzp, table));
      _mm256_storeu_ps(dst + j + 8, Dequantize8(_mm256_cvtepu8_epi32(_mm_srli_si128(q16, 8)), w, vs, vzp, table));
    }
  }
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- small M: decode in registers, no panel (w4a16_avx512.cpp explains the scheme) -----------

// 8 codes (the low 8 bytes of `bytes`) -> floats: the integer code (int4) or the FP4 value.
inline __m256 CodesToFloat(__m128i bytes, bool fp4, __m256 table) {
  const __m256i q = _mm256_cvtepu8_epi32(bytes);
  if (!fp4) return _mm256_cvtepi32_ps(q);
  const __m256 mag = _mm256_permutevar8x32_ps(table, _mm256_and_si256(q, _mm256_set1_epi32(7)));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(q, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
}

template <int MT, int R>
void GemvBlock(const QuantizedWeight& w, const float* xp, int32_t kpad, const float* xsum, int32_t n0, int32_t rows,
               float* y, int32_t t0, const float* bias) {
  const int32_t gs = w.group_size, blocks = BlocksPerRow(w.k, gs);
  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  const __m256 table = _mm256_load_ps(kFp4Magnitude);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const uint8_t* codes[R];
  for (int r = 0; r < R; ++r) codes[r] = w.codes + (size_t)(n0 + (r < rows ? r : 0)) * blocks * (gs / 2);
  __m256 acc[MT][R];
  float zterm[MT][R];
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < R; ++r) {
      acc[t][r] = _mm256_setzero_ps();
      zterm[t][r] = 0.f;
    }
  for (int32_t b = 0; b < blocks; ++b) {
    const int32_t kb = b * gs;
    __m256 part[MT][R];
    for (int t = 0; t < MT; ++t)
      for (int r = 0; r < R; ++r) part[t][r] = _mm256_setzero_ps();
    if (gs == 16) {  // natural k order: interleave the nibbles of 8 bytes
      for (int r = 0; r < R; ++r) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes[r] + (size_t)b * 8));
        const __m128i q16 = _mm_unpacklo_epi8(_mm_and_si128(bytes, low4), _mm_and_si128(_mm_srli_epi16(bytes, 4), low4));
        const __m256 q0 = CodesToFloat(q16, fp4, table), q1 = CodesToFloat(_mm_srli_si128(q16, 8), fp4, table);
        for (int t = 0; t < MT; ++t) {
          part[t][r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xp + (size_t)t * kpad + kb), part[t][r]);
          part[t][r] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xp + (size_t)t * kpad + kb + 8), part[t][r]);
        }
      }
    } else {
      for (int32_t j = 0; j < gs; j += 32) {
        for (int r = 0; r < R; ++r) {
          const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes[r] + (size_t)b * (gs / 2) + j / 2));
          const __m128i lo = _mm_and_si128(bytes, low4), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
          const __m256 e0 = CodesToFloat(lo, fp4, table), e1 = CodesToFloat(_mm_srli_si128(lo, 8), fp4, table);
          const __m256 o0 = CodesToFloat(hi, fp4, table), o1 = CodesToFloat(_mm_srli_si128(hi, 8), fp4, table);
          for (int t = 0; t < MT; ++t) {
            const float* xt = xp + (size_t)t * kpad + kb + j;
            part[t][r] = _mm256_fmadd_ps(e0, _mm256_loadu_ps(xt), part[t][r]);
            part[t][r] = _mm256_fmadd_ps(e1, _mm256_loadu_ps(xt + 8), part[t][r]);
            part[t][r] = _mm256_fmadd_ps(o0, _mm256_loadu_ps(xt + 16), part[t][r]);
            part[t][r] = _mm256_fmadd_ps(o1, _mm256_loadu_ps(xt + 24), part[t][r]);
          }
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const int32_t n = n0 + (r < rows ? r : 0);
      const float scale = w.scales[(size_t)n * blocks + b];
      const __m256 vs = _mm256_set1_ps(scale);
      const float zs = fp4 ? 0.f : scale * (float)ZeroPointAt(w.zero_points, blocks, n, b);
      for (int t = 0; t < MT; ++t) {
        acc[t][r] = _mm256_fmadd_ps(part[t][r], vs, acc[t][r]);
        zterm[t][r] += zs * xsum[(size_t)t * blocks + b];
      }
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < rows; ++r)
      y[(size_t)(t0 + t) * w.n + n0 + r] = (HorizontalSum(acc[t][r]) - zterm[t][r]) + (bias ? bias[n0 + r] : 0.f);
}

template <int MT, int R>
void GemvRows(const QuantizedWeight& w, const GemmArgs& a, int32_t t0, const float* xp, int32_t kpad, const float* xsum,
              int32_t n0, int32_t n1) {
  for (int32_t nb = n0; nb < n1; nb += R) GemvBlock<MT, R>(w, xp, kpad, xsum, nb, std::min(R, n1 - nb), a.y, t0, a.bias);
}

void Gemv(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  const int32_t blocks = BlocksPerRow(w.k, w.group_size), kpad = blocks * w.group_size;
  std::vector<float> sums(2 * (size_t)blocks), xp(2 * (size_t)kpad);
  for (int32_t t0 = 0; t0 < a.m; t0 += 2) {
    const int32_t mt = std::min(2, a.m - t0);
    GroupSums(w, a.x + (size_t)t0 * w.k, mt, sums.data());
    PermuteForNibbles(w, a.x + (size_t)t0 * w.k, mt, kpad, xp.data());
    if (mt == 1) {
      GemvRows<1, 2>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1);
    } else {
      GemvRows<2, 1>(w, a, t0, xp.data(), kpad, sums.data(), n0, n1);
    }
  }
}

// ---- larger M: transposed fp32 panels and the register tile of w4a16_panel_avx2.h ---------------
using avx2::kChunkK;
using avx2::kPanelRows;
using avx2::Lanes;

bool PanelGemm(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  const int32_t K = w.k, gs = w.group_size;
  float* rows_buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kPanelRows * kChunkK));
  float* wt = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kPanelRows * kChunkK));
  if (!rows_buf || !wt) {
    std::free(rows_buf);
    std::free(wt);
    return false;
  }
  for (int32_t t = 0; t < a.m; ++t)
    for (int32_t n = n0; n < n1; ++n) a.y[(size_t)t * w.n + n] = a.bias ? a.bias[n] : 0.f;
  for (int32_t nb = n0; nb < n1; nb += kPanelRows) {
    const int32_t rows = std::min(kPanelRows, n1 - nb);
    const __m256i m0 = Lanes(rows), m1 = Lanes(rows - 8);
    for (int32_t k0 = 0; k0 < K; k0 += kChunkK) {
      const int32_t kc = std::min(kChunkK, K - k0);
      for (int32_t r = 0; r < kPanelRows; ++r) {
        float* dst = rows_buf + (size_t)r * kChunkK;
        if (r < rows) {
          DequantizeBlocks(w, nb + r, k0 / gs, (k0 + kc + gs - 1) / gs, dst);
        } else {
          std::memset(dst, 0, sizeof(float) * kChunkK);
        }
      }
      for (int32_t k = 0; k < kc; ++k)
        for (int32_t r = 0; r < kPanelRows; ++r) wt[(size_t)k * kPanelRows + r] = rows_buf[(size_t)r * kChunkK + k];
      const float* x = a.x + k0;
      float* y = a.y + nb;
      avx2::PanelTokens(wt, kc, x, K, y, w.n, a.m, rows == kPanelRows, m0, m1);
    }
  }
  std::free(rows_buf);
  std::free(wt);
  return true;
}

}  // namespace

bool RowsAvx2(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  if (a.m <= kGemvMaxTokens) {
    Gemv(w, a, n0, n1);
    return true;
  }
  return PanelGemm(w, a, n0, n1);
}

}  // namespace w4a8::cpu::w4a16
