// AVX2 kernel: the two 32-byte halves of a chunk are channels 0..7 and 8..15 (4 k each per nibble).
// vpmaddubsw multiplies the u8 weights (0..24) by int8 activations into int16 pairs (|pair| <= 6144, no
// saturation), low and high nibble products are summed in int16 (<= 12288) and vpmaddwd widens to int32.
// Two paths: Micro (few rows, bandwidth-bound) and BigBlock (many rows, compute-bound; see below).
#include <immintrin.h>

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {
namespace {

inline int32_t LoadI32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// (Tried and measured slower: summing the vpmaddubsw results in int16 over several chunks here as BigBlock
// does, 0.079-0.081 ms against 0.075-0.076 for a 2048 x 2560 M = 1 call in cache on the EPYC, 2 threads.)
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
    if (g + 2 < v.blocks_per_row) PrefetchGroupMeta(v, p, g + 2);
    for (int32_t c = c_begin; c < c_begin + chunks_per_group; ++c) {
      const uint8_t* src = wp + (size_t)c * kCpuChunkBytes;
      _mm_prefetch((const char*)src + 2048, _MM_HINT_T0);
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

// Many rows: blocks of up to 4 panels x 32 rows, groups outer and rows inner, as the AVX-512 BigBlock. A group's
// weights are unpacked once (u8, fp4 through its table) into an L1 buffer that every 4-row tile reuses,
// so the int4 codes are no longer unpacked again for every 4 rows. Micro spends two vpmaddubsw, an int16
// add, a vpmaddwd and an int32 add per row, half panel and chunk; here the vpmaddubsw results are summed
// in int16 over Int16Chunks() chunks before one vpmaddwd widens them: |sum| <= 2 nibbles x 2 pairs x
// u8 max x 128 per chunk, i.e. 7680 for int4 (4 chunks: 30720) and 12288 for fp4 (2 chunks: 24576),
// below 32767, so the int32 dots are exact and the group fold is the reference's, bit for bit.
// (Tried and measured slower on the EPYC: the 4-row loop as inline asm without spills, and widening
// with shifts instead of vpmaddwd.)
constexpr int32_t kBigRows = 4;          // rows per register tile: 8 int16 accumulators + 4 weights + 2 temps
constexpr int32_t kBigBlockRows = 32;    // rows whose fp32 accumulators (8 KiB) stay in L1 over all groups
constexpr int32_t kBigPanels = 4;        // panels whose unpacked group weights share one read of the activations
constexpr int32_t kBigMinRows = 32;      // fewer rows take Micro (measured: at 16 rows Micro was ~10% faster)
constexpr int32_t kHalves = 2;           // 8-channel halves of a panel
constexpr int32_t kVecsPerChunk = 4;     // unpacked: low half 0, high half 0, low half 1, high half 1

template <bool kFp4>
constexpr int32_t Int16Chunks() {
  return kFp4 ? 2 : 4;
}
static_assert(2 * 2 * 15 * 128 * 4 <= 32767 && 2 * 2 * 24 * 128 * 2 <= 32767, "int16 sums cannot saturate");

// dots[r * 16 + lane] = exact int32 dot over `chunks` chunks of row x + r * stride with the unpacked panel w.
template <int R, bool kFp4>
void GroupDots(const __m256i* w, const int8_t* x, size_t stride, int32_t chunks, int32_t* dots) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc32[R][kHalves];
  for (int r = 0; r < R; ++r) acc32[r][0] = acc32[r][1] = _mm256_setzero_si256();
  for (int32_t c0 = 0; c0 < chunks; c0 += Int16Chunks<kFp4>()) {
    const int32_t c1 = c0 + Int16Chunks<kFp4>() < chunks ? c0 + Int16Chunks<kFp4>() : chunks;
    __m256i acc16[R][kHalves];
    for (int r = 0; r < R; ++r) acc16[r][0] = acc16[r][1] = _mm256_setzero_si256();
    for (int32_t c = c0; c < c1; ++c) {
      const __m256i* wc = w + (size_t)c * kVecsPerChunk;
      const __m256i lo0 = _mm256_load_si256(wc), hi0 = _mm256_load_si256(wc + 1);
      const __m256i lo1 = _mm256_load_si256(wc + 2), hi1 = _mm256_load_si256(wc + 3);
      for (int r = 0; r < R; ++r) {
        const int8_t* xk = x + (size_t)r * stride + (size_t)c * kCpuChunkK;
        const __m256i xa = _mm256_set1_epi32(LoadI32(xk));
        const __m256i xb = _mm256_set1_epi32(LoadI32(xk + 4));
        acc16[r][0] = _mm256_add_epi16(acc16[r][0], _mm256_maddubs_epi16(lo0, xa));
        acc16[r][1] = _mm256_add_epi16(acc16[r][1], _mm256_maddubs_epi16(lo1, xa));
        acc16[r][0] = _mm256_add_epi16(acc16[r][0], _mm256_maddubs_epi16(hi0, xb));
        acc16[r][1] = _mm256_add_epi16(acc16[r][1], _mm256_maddubs_epi16(hi1, xb));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < kHalves; ++h) acc32[r][h] = _mm256_add_epi32(acc32[r][h], _mm256_madd_epi16(acc16[r][h], ones));
  }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < kHalves; ++h) _mm256_store_si256((__m256i*)(dots + r * kCpuPanelN + 8 * h), acc32[r][h]);
}

template <bool kFp4>
void GroupDotsRows(int rows, const __m256i* w, const int8_t* x, size_t stride, int32_t chunks, int32_t* dots) {
  switch (rows) {
    case 1: return GroupDots<1, kFp4>(w, x, stride, chunks, dots);
    case 2: return GroupDots<2, kFp4>(w, x, stride, chunks, dots);
    case 3: return GroupDots<3, kFp4>(w, x, stride, chunks, dots);
    default: return GroupDots<4, kFp4>(w, x, stride, chunks, dots);
  }
}

// Rows [m0, m1) (at most kBigBlockRows) x panels [p0, p1) (at most kBigPanels). Per group, the
// panels' weights are unpacked once; each 4-row tile's activations (4 x group bytes) then serve every
// panel from L1, so the activations are read once per block of panels, not once per panel.
template <bool kFp4>
void BigBlock(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, int32_t m0, int32_t m1,
              int32_t p0, int32_t p1) {
  const size_t panel_bytes = (size_t)(v.k_padded / kCpuChunkK) * kCpuChunkBytes;
  const int32_t chunks_per_group = v.group_size / kCpuChunkK;
  const int32_t np = p1 - p0;
  constexpr int32_t kLanes = kBigPanels * kCpuPanelN;
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  __m256i lut = _mm256_setzero_si256();
  if (kFp4) {
    alignas(16) int8_t table[16];
    for (int c = 0; c < 16; ++c) table[c] = (int8_t)CpuWeightU8(WeightFormat::kFp4E2M1, c);
    lut = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i*)table));
  }
  constexpr int32_t kPanelVecs = kMaxGroupSize / kCpuChunkK * kVecsPerChunk;
  alignas(32) __m256i unpacked[kBigPanels * kPanelVecs];  // 32 KiB at group 256 (8 KiB at 128)
  alignas(32) int32_t dots[kBigRows * kCpuPanelN];
  alignas(32) float facc[kBigBlockRows * kLanes];
  for (int i = 0; i < (m1 - m0) * kLanes; i += 8) _mm256_store_ps(facc + i, _mm256_setzero_ps());
  for (int32_t g = 0; g < v.blocks_per_row; ++g) {
    const int32_t c_begin = g * chunks_per_group;
    __m256i zero[kBigPanels][kHalves];
    __m256 w_scale[kBigPanels][kHalves];
    for (int32_t j = 0; j < np; ++j) {
      const uint8_t* wp = v.codes + (size_t)(p0 + j) * panel_bytes + (size_t)c_begin * kCpuChunkBytes;
      __m256i* dst = unpacked + (size_t)j * kPanelVecs;
      for (int32_t c = 0; c < chunks_per_group; ++c) {
        for (int h = 0; h < kHalves; ++h) {
          const __m256i raw = _mm256_load_si256((const __m256i*)(wp + (size_t)c * kCpuChunkBytes + 32 * h));
          __m256i lo = _mm256_and_si256(raw, nibble);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
          if (kFp4) {
            lo = _mm256_shuffle_epi8(lut, lo);
            hi = _mm256_shuffle_epi8(lut, hi);
          }
          _mm256_store_si256(dst + c * kVecsPerChunk + 2 * h, lo);
          _mm256_store_si256(dst + c * kVecsPerChunk + 2 * h + 1, hi);
        }
      }
      const size_t meta = ((size_t)(p0 + j) * v.blocks_per_row + g) * kCpuPanelN;
      for (int h = 0; h < kHalves; ++h) {
        zero[j][h] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(v.zeros + meta + 8 * h)));
        w_scale[j][h] = _mm256_loadu_ps(v.scales + meta + 8 * h);
      }
    }
    for (int32_t m = m0; m < m1; m += kBigRows) {
      const int rows = m1 - m < kBigRows ? m1 - m : kBigRows;
      const int8_t* x = a.q + (size_t)m * a.k_padded + (size_t)c_begin * kCpuChunkK;
      for (int32_t j = 0; j < np; ++j) {
        GroupDotsRows<kFp4>(rows, unpacked + (size_t)j * kPanelVecs, x, (size_t)a.k_padded, chunks_per_group, dots);
        // Group fold exactly as Micro and the reference: isum = dot - zero * x_sum; acc = fma(isum, xs * ws, acc).
        for (int r = 0; r < rows; ++r) {
          const size_t xm = (size_t)(m + r) * a.blocks + g;
          const __m256i xsum = _mm256_set1_epi32(a.sum[xm]);
          const __m256 xscale = _mm256_set1_ps(a.scale[xm]);
          float* acc = facc + (size_t)(m - m0 + r) * kLanes + j * kCpuPanelN;
          for (int h = 0; h < kHalves; ++h) {
            const __m256i dot = _mm256_load_si256((const __m256i*)(dots + r * kCpuPanelN + 8 * h));
            const __m256i isum = _mm256_sub_epi32(dot, _mm256_mullo_epi32(zero[j][h], xsum));
            const __m256 scale = _mm256_mul_ps(xscale, w_scale[j][h]);
            _mm256_store_ps(acc + 8 * h,
                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, _mm256_load_ps(acc + 8 * h)));
          }
        }
      }
    }
  }
  for (int32_t j = 0; j < np; ++j) {
    const int32_t n0 = (p0 + j) * kCpuPanelN;
    for (int h = 0; h < kHalves; ++h) {
      const int32_t left = v.n - (n0 + 8 * h);
      if (left <= 0) break;
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
      const __m256 b = bias ? _mm256_maskload_ps(bias + n0 + 8 * h, mask) : _mm256_setzero_ps();
      for (int32_t m = m0; m < m1; ++m) {
        const __m256 acc = _mm256_load_ps(facc + (size_t)(m - m0) * kLanes + j * kCpuPanelN + 8 * h);
        const __m256 out = bias ? _mm256_add_ps(acc, b) : acc;
        float* dst = y + (size_t)m * v.n + n0 + 8 * h;
        if (left >= 8) {
          _mm256_storeu_ps(dst, out);
        } else {
          _mm256_maskstore_ps(dst, mask, out);
        }
      }
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
  if (t.m1 - t.m0 >= kBigMinRows) {
    for (int32_t p = t.p0; p < t.p1; p += kBigPanels) {
      const int32_t p_end = p + kBigPanels < t.p1 ? p + kBigPanels : t.p1;
      for (int32_t m = t.m0; m < t.m1; m += kBigBlockRows) {
        const int32_t m_end = m + kBigBlockRows < t.m1 ? m + kBigBlockRows : t.m1;
        (fp4 ? BigBlock<true> : BigBlock<false>)(v, a, bias, y, m, m_end, p, p_end);
      }
    }
    return;
  }
  for (int32_t p = t.p0; p < t.p1; ++p) {
    for (int32_t m = t.m0; m < t.m1; m += kMaxRows) {
      const int rows = t.m1 - m < kMaxRows ? t.m1 - m : kMaxRows;
      (fp4 ? PickRows<true>(rows) : PickRows<false>(rows))(v, a, bias, y, m, p);
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
