// W4A16 with AVX-512: dequantize kRows output rows into an fp32 panel, then dot every token
// against it with a (tokens x rows) register tile. Compiled with AVX-512 flags (file name).
#include <immintrin.h>

// GCC 12 flags the undefined-vector idiom inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "w4a16_internal.h"

namespace w4a8::cpu::w4a16 {
namespace {

// FP4 E2M1 values of codes 0..15 (formats.h), looked up with one permute.
alignas(64) const float kFp4Table[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                                         -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

// One row's weights, dequantized exactly as DequantizeAt does ((q - zp) * scale in one rounding),
// into panel[0 .. kpad); entries at k >= K are zeroed so that the tail never adds garbage.
void DequantizeRow(const QuantizedWeight& w, int32_t n, int32_t kpad, float* panel) {
  const int32_t gs = w.group_size, blocks = BlocksPerRow(w.k, gs);
  const uint8_t* codes = w.codes + (size_t)n * blocks * (gs / 2);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m512 table = _mm512_load_ps(kFp4Table);
  for (int32_t b = 0; b < blocks; ++b) {
    const float scale = w.scales[(size_t)n * blocks + b];
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vzp = _mm512_set1_epi32(ZeroPointAt(w.zero_points, blocks, n, b));
    const uint8_t* g = codes + (size_t)b * (gs / 2);
    float* out = panel + (size_t)b * gs;
    for (int32_t j = 0; j < gs; j += 16) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(g + j / 2));
      const __m128i lo = _mm_and_si128(bytes, low4);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
      const __m512i q = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));  // natural k order
      __m512 v;
      if (w.format == WeightFormat::kFp4E2M1) {
        v = _mm512_mul_ps(_mm512_permutexvar_ps(q, table), vs);
      } else {
        v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, vzp)), vs);
      }
      _mm512_store_ps(out + j, v);
    }
  }
  std::fill(panel + w.k, panel + kpad, 0.f);
}

// MT tokens x kRows rows over the whole K: one horizontal reduction per output.
template <int MT>
void Tile(const float* panel, int32_t kpad, int32_t K, const float* x, int32_t t0, float* y, int32_t n,
          int32_t n0, int32_t rows, const float* bias) {
  __m512 acc[MT][kRows];
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < kRows; ++r) acc[t][r] = _mm512_setzero_ps();
  int32_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[kRows];
    for (int r = 0; r < kRows; ++r) wv[r] = _mm512_load_ps(panel + (size_t)r * kpad + k);
    for (int t = 0; t < MT; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + (size_t)(t0 + t) * K + k);
      for (int r = 0; r < kRows; ++r) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
    }
  }
  if (k < K) {
    const __mmask16 mask = (__mmask16)((1u << (K - k)) - 1);
    __m512 wv[kRows];
    for (int r = 0; r < kRows; ++r) wv[r] = _mm512_load_ps(panel + (size_t)r * kpad + k);
    for (int t = 0; t < MT; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + (size_t)(t0 + t) * K + k);
      for (int r = 0; r < kRows; ++r) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int r = 0; r < rows; ++r)
      y[(size_t)(t0 + t) * n + n0 + r] = _mm512_reduce_add_ps(acc[t][r]) + (bias ? bias[n0 + r] : 0.f);
}

}  // namespace

bool RowsAvx512(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1) {
  const int32_t K = w.k, kpad = BlocksPerRow(K, w.group_size) * w.group_size;
  float* panel = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * kRows * (size_t)kpad));
  if (!panel) return false;
  for (int32_t nb = n0; nb < n1; nb += kRows) {
    const int32_t rows = std::min(kRows, n1 - nb);
    for (int32_t r = 0; r < kRows; ++r) {
      if (r < rows) {
        DequantizeRow(w, nb + r, kpad, panel + (size_t)r * kpad);
      } else {
        std::memset(panel + (size_t)r * kpad, 0, sizeof(float) * kpad);
      }
    }
    int32_t t = 0;
    for (; t + 4 <= a.m; t += 4) Tile<4>(panel, kpad, K, a.x, t, a.y, w.n, nb, rows, a.bias);
    switch (a.m - t) {
      case 3: Tile<3>(panel, kpad, K, a.x, t, a.y, w.n, nb, rows, a.bias); break;
      case 2: Tile<2>(panel, kpad, K, a.x, t, a.y, w.n, nb, rows, a.bias); break;
      case 1: Tile<1>(panel, kpad, K, a.x, t, a.y, w.n, nb, rows, a.bias); break;
      default: break;
    }
  }
  std::free(panel);
  return true;
}

}  // namespace w4a8::cpu::w4a16
