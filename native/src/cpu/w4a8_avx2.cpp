// AVX2 kernel: the two 32-byte halves of a chunk are channels 0..7 and 8..15 (4 k each per nibble).
// vpmaddubsw multiplies the u8 weights (0..24) by int8 activations into int16 pairs (|pair| <= 6096, no
// saturation), low and high nibble products are summed in int16 (<= 12192) and vpmaddwd widens to int32.
#include <immintrin.h>

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline int32_t LoadI32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

template <int MR, bool kFp4>
void Micro(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, int32_t m0, int32_t p) {
  const size_t panel_bytes = (size_t)(v.k_padded / kCpuChunkK) * kCpuChunkBytes;
  const uint8_t* wp = v.codes + (size_t)p * panel_bytes;
  const int8_t* xr[MR];
  for (int r = 0; r < MR; ++r) xr[r] = a.q + (size_t)(m0 + r) * a.k_padded;
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i lut = _mm256_setzero_si256();
  if (kFp4) {
    alignas(16) int8_t table[16];
    for (int c = 0; c < 16; ++c) table[c] = (int8_t)CpuWeightU8(WeightFormat::kFp4E2M1, c);
    lut = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i*)table));
  }
  __m256 facc[MR][2];
  for (int r = 0; r < MR; ++r) facc[r][0] = facc[r][1] = _mm256_setzero_ps();

  const int32_t chunks_per_group = v.group_size / kCpuChunkK;
  for (int32_t g = 0; g < v.blocks_per_row; ++g) {
    __m256i iacc[MR][2];
    for (int r = 0; r < MR; ++r) iacc[r][0] = iacc[r][1] = _mm256_setzero_si256();
    const int32_t c_begin = g * chunks_per_group;
    for (int32_t c = c_begin; c < c_begin + chunks_per_group; ++c) {
      const uint8_t* src = wp + (size_t)c * kCpuChunkBytes;
      if (MR <= 2) _mm_prefetch((const char*)src + 2048, _MM_HINT_T0);
      __m256i lo[2], hi[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i raw = _mm256_load_si256((const __m256i*)(src + 32 * h));
        lo[h] = _mm256_and_si256(raw, nibble);
        hi[h] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
        if (kFp4) {
          lo[h] = _mm256_shuffle_epi8(lut, lo[h]);
          hi[h] = _mm256_shuffle_epi8(lut, hi[h]);
        }
      }
      const int32_t k = c * kCpuChunkK;
      for (int r = 0; r < MR; ++r) {
        const __m256i xa = _mm256_set1_epi32(LoadI32(xr[r] + k));
        const __m256i xb = _mm256_set1_epi32(LoadI32(xr[r] + k + 4));
        for (int h = 0; h < 2; ++h) {
          const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], xa), _mm256_maddubs_epi16(hi[h], xb));
          iacc[r][h] = _mm256_add_epi32(iacc[r][h], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
    const size_t meta = ((size_t)p * v.blocks_per_row + g) * kCpuPanelN;
    for (int h = 0; h < 2; ++h) {
      const __m256i zero = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(v.zeros + meta + 8 * h)));
      const __m256 w_scale = _mm256_loadu_ps(v.scales + meta + 8 * h);
      for (int r = 0; r < MR; ++r) {
        const size_t xm = (size_t)(m0 + r) * a.blocks + g;
        const __m256i isum = _mm256_sub_epi32(iacc[r][h], _mm256_mullo_epi32(zero, _mm256_set1_epi32(a.sum[xm])));
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(a.scale[xm]), w_scale);
        facc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, facc[r][h]);
      }
    }
  }
  const int32_t n0 = p * kCpuPanelN;
  for (int h = 0; h < 2; ++h) {
    const int32_t left = v.n - (n0 + 8 * h);
    if (left <= 0) break;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
    const __m256 b = bias ? _mm256_maskload_ps(bias + n0 + 8 * h, mask) : _mm256_setzero_ps();
    for (int r = 0; r < MR; ++r) {
      const __m256 out = bias ? _mm256_add_ps(facc[r][h], b) : facc[r][h];
      _mm256_maskstore_ps(y + (size_t)(m0 + r) * v.n + n0 + 8 * h, mask, out);
    }
  }
}

using MicroFn = void (*)(const CpuPackedView&, const QuantizedActs&, const float*, float*, int32_t, int32_t);

template <bool kFp4>
MicroFn PickRows(int rows) {
  switch (rows) {
    case 1: return Micro<1, kFp4>;
    case 2: return Micro<2, kFp4>;
    case 3: return Micro<3, kFp4>;
    default: return Micro<4, kFp4>;
  }
}

constexpr int kMaxRows = 4;

}  // namespace

void TileAvx2(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t) {
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  for (int32_t p = t.p0; p < t.p1; ++p) {
    for (int32_t m = t.m0; m < t.m1; m += kMaxRows) {
      const int rows = t.m1 - m < kMaxRows ? t.m1 - m : kMaxRows;
      (fp4 ? PickRows<true>(rows) : PickRows<false>(rows))(v, a, bias, y, m, p);
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
