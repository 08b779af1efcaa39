// AVX512-VNNI kernel: one 64-byte chunk of the packed layout is 16 channels x 8 k; its low and high
// nibbles are the unsigned operands of two vpdpbusd against broadcast int8 activations (4 k each).
// The u8/s8 trick: sum x_q * (u - zero) = sum x_q * u - zero * sum x_q, the second sum precomputed
// per (token, group) at quantization, so the inner loop carries no zero point at all.
#include <immintrin.h>

// GCC 12 reports false 'maybe uninitialized' warnings inside its own AVX512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline __mmask16 ValidLanes(int32_t n_real, int32_t n0) {
  const int32_t left = n_real - n0;
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

inline int32_t LoadI32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// MR (<= 6: 12 int32 accumulators leave room for the weights without spilling in the K loop) token
// rows x NP panels over the whole K. Few rows are bandwidth-bound: they get separate
// accumulators for the low/high nibbles (shorter vpdpbusd dependency chains) and software prefetch.
template <int MR, int NP, bool kFp4>
void Micro(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, int32_t m0, int32_t p0) {
  constexpr bool kSplit = MR <= 2;
  constexpr int kAcc = kSplit ? 2 : 1;
  const size_t panel_bytes = (size_t)(v.k_padded / kCpuChunkK) * kCpuChunkBytes;
  const uint8_t* wp[NP];
  for (int j = 0; j < NP; ++j) wp[j] = v.codes + (size_t)(p0 + j) * panel_bytes;
  const int8_t* xr[MR];
  for (int r = 0; r < MR; ++r) xr[r] = a.q + (size_t)(m0 + r) * a.k_padded;
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  // fp4 code -> 2 * value + 12 (vpshufb looks up within each 128-bit lane, so the table is repeated).
  __m512i lut = _mm512_setzero_si512();
  if (kFp4) {
    alignas(16) int8_t table[16];
    for (int c = 0; c < 16; ++c) table[c] = (int8_t)CpuWeightU8(WeightFormat::kFp4E2M1, c);
    lut = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i*)table));
  }

  __m512 facc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NP; ++j) facc[r][j] = _mm512_setzero_ps();

  const int32_t chunks_per_group = v.group_size / kCpuChunkK;
  for (int32_t g = 0; g < v.blocks_per_row; ++g) {
    __m512i iacc[MR][NP][kAcc];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NP; ++j)
        for (int h = 0; h < kAcc; ++h) iacc[r][j][h] = _mm512_setzero_si512();
    const int32_t c_begin = g * chunks_per_group;
    for (int32_t c = c_begin; c < c_begin + chunks_per_group; ++c) {
      __m512i lo[NP], hi[NP];
      for (int j = 0; j < NP; ++j) {
        const uint8_t* src = wp[j] + (size_t)c * kCpuChunkBytes;
        if (kSplit) _mm_prefetch((const char*)src + 2048, _MM_HINT_T0);
        const __m512i raw = _mm512_load_si512((const void*)src);
        lo[j] = _mm512_and_si512(raw, nibble);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
        if (kFp4) {
          lo[j] = _mm512_shuffle_epi8(lut, lo[j]);
          hi[j] = _mm512_shuffle_epi8(lut, hi[j]);
        }
      }
      const int32_t k = c * kCpuChunkK;
      for (int r = 0; r < MR; ++r) {
        const __m512i xa = _mm512_set1_epi32(LoadI32(xr[r] + k));
        const __m512i xb = _mm512_set1_epi32(LoadI32(xr[r] + k + 4));
        for (int j = 0; j < NP; ++j) {
          iacc[r][j][0] = _mm512_dpbusd_epi32(iacc[r][j][0], lo[j], xa);
          iacc[r][j][kAcc - 1] = _mm512_dpbusd_epi32(iacc[r][j][kAcc - 1], hi[j], xb);
        }
      }
    }
    // Group epilogue: zero-point correction, then acc = fma(isum, x_scale * w_scale, acc) as the reference.
    for (int j = 0; j < NP; ++j) {
      const size_t meta = ((size_t)(p0 + j) * v.blocks_per_row + g) * kCpuPanelN;
      const __m512i zero = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(v.zeros + meta)));
      const __m512 w_scale = _mm512_loadu_ps(v.scales + meta);
      for (int r = 0; r < MR; ++r) {
        const size_t xm = (size_t)(m0 + r) * a.blocks + g;
        __m512i dot = iacc[r][j][0];
        if (kSplit) dot = _mm512_add_epi32(dot, iacc[r][j][kAcc - 1]);
        const __m512i isum = _mm512_sub_epi32(dot, _mm512_mullo_epi32(zero, _mm512_set1_epi32(a.sum[xm])));
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(a.scale[xm]), w_scale);
        facc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, facc[r][j]);
      }
    }
  }
  for (int j = 0; j < NP; ++j) {
    const int32_t n0 = (p0 + j) * kCpuPanelN;
    const __mmask16 mask = ValidLanes(v.n, n0);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      const __m512 out = bias ? _mm512_add_ps(facc[r][j], b) : facc[r][j];
      _mm512_mask_storeu_ps(y + (size_t)(m0 + r) * v.n + n0, mask, out);
    }
  }
}

using MicroFn = void (*)(const CpuPackedView&, const QuantizedActs&, const float*, float*, int32_t, int32_t);

template <int NP, bool kFp4>
MicroFn PickRows(int rows) {
  switch (rows) {
    case 1: return Micro<1, NP, kFp4>;
    case 2: return Micro<2, NP, kFp4>;
    case 3: return Micro<3, NP, kFp4>;
    case 4: return Micro<4, NP, kFp4>;
    case 5: return Micro<5, NP, kFp4>;
    default: return Micro<6, NP, kFp4>;
  }
}

constexpr int kMaxRows = 6;

}  // namespace

void TileAvx512Vnni(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t) {
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  // One or two tokens are bandwidth-bound: four weight streams at once keep more loads in flight.
  int32_t p_rest = t.p0;
  if (t.m1 - t.m0 <= 2) {
    const bool one = t.m1 - t.m0 == 1;
    const MicroFn fn = one ? (fp4 ? Micro<1, 4, true> : Micro<1, 4, false>)
                           : (fp4 ? Micro<2, 4, true> : Micro<2, 4, false>);
    for (; p_rest + 4 <= t.p1; p_rest += 4) fn(v, a, bias, y, t.m0, p_rest);
  }
  for (int32_t p = p_rest; p < t.p1; p += 2) {
    const bool pair = p + 1 < t.p1;
    for (int32_t m = t.m0; m < t.m1; m += kMaxRows) {
      const int rows = t.m1 - m < kMaxRows ? t.m1 - m : kMaxRows;
      const MicroFn fn = pair ? (fp4 ? PickRows<2, true>(rows) : PickRows<2, false>(rows))
                              : (fp4 ? PickRows<1, true>(rows) : PickRows<1, false>(rows));
      fn(v, a, bias, y, m, p);
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
