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
    if (g + 2 < v.blocks_per_row)
      for (int j = 0; j < NP; ++j) PrefetchGroupMeta(v, p0 + j, g + 2);
    for (int32_t c = c_begin; c < c_begin + chunks_per_group; ++c) {
      __m512i lo[NP], hi[NP];
      for (int j = 0; j < NP; ++j) {
        const uint8_t* src = wp[j] + (size_t)c * kCpuChunkBytes;
        _mm_prefetch((const char*)src + 2048, _MM_HINT_T0);
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

// Large M: 8 token rows x 3 panels (48 channels), int4 only. The K loop of one group is inline asm
// with fixed registers: 24 int32 accumulators (zmm0-23), the unpacked low/high nibbles of the three
// panels (zmm24-29), the nibble mask (zmm30) and one activation broadcast (zmm31). Written by hand
// because GCC 12 wraps every dpbusd intrinsic in accumulator copies and spills at this tile size.
// Each unpacked weight vector feeds 8 dot products, each broadcast 3; loads stay under one per cycle
// (broadcasting from memory inside every vpdpbusd instead made the loop load-bound on Zen 5).
constexpr int kBigRows = 8;
constexpr int kBigPanels = 3;
constexpr int kBigMinRows = 16;

#define W4A8_DP3(addr, wa, wb, wc, a, b, c)                              \
  "vpbroadcastd " addr ", %%zmm31\n\t"                                  \
  "vpdpbusd %%zmm31, %%zmm" #wa ", %%zmm" #a "\n\t"                     \
  "vpdpbusd %%zmm31, %%zmm" #wb ", %%zmm" #b "\n\t"                     \
  "vpdpbusd %%zmm31, %%zmm" #wc ", %%zmm" #c "\n\t"
#define W4A8_ROWS(off, wa, wb, wc)                                        \
  W4A8_DP3(off "(%[x0])", wa, wb, wc, 0, 1, 2)                            \
  W4A8_DP3(off "(%[x0],%[s])", wa, wb, wc, 3, 4, 5)                       \
  W4A8_DP3(off "(%[x0],%[s],2)", wa, wb, wc, 6, 7, 8)                     \
  W4A8_DP3(off "(%[x0],%[s3])", wa, wb, wc, 9, 10, 11)                    \
  W4A8_DP3(off "(%[x4])", wa, wb, wc, 12, 13, 14)                         \
  W4A8_DP3(off "(%[x4],%[s])", wa, wb, wc, 15, 16, 17)                    \
  W4A8_DP3(off "(%[x4],%[s],2)", wa, wb, wc, 18, 19, 20)                  \
  W4A8_DP3(off "(%[x4],%[s3])", wa, wb, wc, 21, 22, 23)
#define W4A8_UNPACK(addr, lo, hi)                                         \
  "vpandd " addr ", %%zmm30, %%zmm" #lo "\n\t"                            \
  "vpsrlw $4, " addr ", %%zmm" #hi "\n\t"                                 \
  "vpandd %%zmm30, %%zmm" #hi ", %%zmm" #hi "\n\t"
#define W4A8_STORE4(a, b, c, d)                                            \
  "vmovdqu32 %%zmm" #a ", " #a "*64(%[out])\n\t"                           \
  "vmovdqu32 %%zmm" #b ", " #b "*64(%[out])\n\t"                           \
  "vmovdqu32 %%zmm" #c ", " #c "*64(%[out])\n\t"                           \
  "vmovdqu32 %%zmm" #d ", " #d "*64(%[out])\n\t"

// out[(r * 3 + j) * 16 + lane] = exact int32 dot of chunks [0, chunks) of rows x0 + r*s and panels w + j*pb.
inline void GroupDots8x3(const uint8_t* w, size_t pb, const int8_t* x0, size_t s, int32_t chunks, int32_t* out) {
  alignas(64) static const uint8_t kNibble[64] = {
      15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
      15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
      15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15};
  const int8_t* x4 = x0 + 4 * s;
  size_t n = (size_t)chunks;
  asm volatile(
      "vmovdqu32 (%[nib]), %%zmm30\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovdqa32 %%zmm0, %%zmm1\n\t" "vmovdqa32 %%zmm0, %%zmm2\n\t" "vmovdqa32 %%zmm0, %%zmm3\n\t"
      "vmovdqa32 %%zmm0, %%zmm4\n\t" "vmovdqa32 %%zmm0, %%zmm5\n\t" "vmovdqa32 %%zmm0, %%zmm6\n\t"
      "vmovdqa32 %%zmm0, %%zmm7\n\t" "vmovdqa32 %%zmm0, %%zmm8\n\t" "vmovdqa32 %%zmm0, %%zmm9\n\t"
      "vmovdqa32 %%zmm0, %%zmm10\n\t" "vmovdqa32 %%zmm0, %%zmm11\n\t" "vmovdqa32 %%zmm0, %%zmm12\n\t"
      "vmovdqa32 %%zmm0, %%zmm13\n\t" "vmovdqa32 %%zmm0, %%zmm14\n\t" "vmovdqa32 %%zmm0, %%zmm15\n\t"
      "vmovdqa32 %%zmm0, %%zmm16\n\t" "vmovdqa32 %%zmm0, %%zmm17\n\t" "vmovdqa32 %%zmm0, %%zmm18\n\t"
      "vmovdqa32 %%zmm0, %%zmm19\n\t" "vmovdqa32 %%zmm0, %%zmm20\n\t" "vmovdqa32 %%zmm0, %%zmm21\n\t"
      "vmovdqa32 %%zmm0, %%zmm22\n\t" "vmovdqa32 %%zmm0, %%zmm23\n\t"
      "1:\n\t"
      W4A8_UNPACK("(%[w])", 24, 25)
      W4A8_UNPACK("(%[w],%[pb])", 26, 27)
      W4A8_UNPACK("(%[w],%[pb],2)", 28, 29)
      W4A8_ROWS("", 24, 26, 28)
      W4A8_ROWS("4", 25, 27, 29)
      "add $64, %[w]\n\t"
      "add $8, %[x0]\n\t"
      "add $8, %[x4]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      W4A8_STORE4(0, 1, 2, 3) W4A8_STORE4(4, 5, 6, 7) W4A8_STORE4(8, 9, 10, 11)
      W4A8_STORE4(12, 13, 14, 15) W4A8_STORE4(16, 17, 18, 19) W4A8_STORE4(20, 21, 22, 23)
      : [w] "+r"(w), [x0] "+r"(x0), [x4] "+r"(x4), [n] "+r"(n)
      : [s] "r"(s), [s3] "r"(3 * s), [pb] "r"(pb), [out] "r"(out), [nib] "r"(kNibble)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
        "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}
#undef W4A8_DP3
#undef W4A8_ROWS
#undef W4A8_UNPACK
#undef W4A8_STORE4

// Rows [m0, m1) (a multiple of kBigRows, at most kBigBlockRows) x kBigPanels panels. Groups outer, row
// blocks inner: one group's weights (3 KiB) and activations (<= 8 KiB) and the fp32 accumulators
// (<= 12 KiB) stay in L1 while every row block reuses them. Same per-group fold as Micro.
constexpr int32_t kBigBlockRows = 64;
// Largest |integer| in the int4 group sums: 15 (u8 weight or zero) x 128 (|int8|) x the group size.
constexpr int64_t kGroupBound = 15LL * 128 * kMaxGroupSize;
static_assert(kGroupBound < (1LL << 24), "int4 group sums are exact in fp32");

void BigBlock(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, int32_t m0, int32_t m1,
              int32_t p0) {
  const size_t panel_bytes = (size_t)(v.k_padded / kCpuChunkK) * kCpuChunkBytes;
  const uint8_t* w = v.codes + (size_t)p0 * panel_bytes;
  const int32_t chunks_per_group = v.group_size / kCpuChunkK;
  constexpr int kLanes = kBigPanels * kCpuPanelN;
  alignas(64) int32_t dots[kBigRows * kLanes];
  alignas(64) float facc[kBigBlockRows * kLanes];
  for (int i = 0; i < (m1 - m0) * kLanes; i += kCpuPanelN) _mm512_store_ps(facc + i, _mm512_setzero_ps());
  for (int32_t g = 0; g < v.blocks_per_row; ++g) {
    const size_t c0 = (size_t)g * chunks_per_group;
    __m512 zero[kBigPanels];
    __m512 w_scale[kBigPanels];
    for (int j = 0; j < kBigPanels; ++j) {
      const size_t meta = ((size_t)(p0 + j) * v.blocks_per_row + g) * kCpuPanelN;
      zero[j] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(v.zeros + meta))));
      w_scale[j] = _mm512_loadu_ps(v.scales + meta);
    }
    for (int32_t m = m0; m < m1; m += kBigRows) {
      GroupDots8x3(w + c0 * kCpuChunkBytes, panel_bytes, a.q + (size_t)m * a.k_padded + c0 * kCpuChunkK,
                   (size_t)a.k_padded, chunks_per_group, dots);
      // Group epilogue: zero-point correction, then acc = fma(isum, x_scale * w_scale, acc) as the reference.
      // The correction is done in fp32 (one fnmadd instead of an int32 multiply and subtract): dot,
      // zero * x_sum and their difference are integers below 2^24 (kGroupBound), so it is exact.
      for (int r = 0; r < kBigRows; ++r) {
        const size_t xm = (size_t)(m + r) * a.blocks + g;
        const __m512 xsum = _mm512_set1_ps((float)a.sum[xm]);
        const __m512 xscale = _mm512_set1_ps(a.scale[xm]);
        float* acc = facc + (size_t)(m - m0 + r) * kLanes;
        for (int j = 0; j < kBigPanels; ++j) {
          const __m512i dot = _mm512_load_si512((const void*)(dots + r * kLanes + j * kCpuPanelN));
          const __m512 isum = _mm512_fnmadd_ps(zero[j], xsum, _mm512_cvtepi32_ps(dot));
          const __m512 scale = _mm512_mul_ps(xscale, w_scale[j]);
          _mm512_store_ps(acc + j * kCpuPanelN,
                          _mm512_fmadd_ps(isum, scale, _mm512_load_ps(acc + j * kCpuPanelN)));
        }
      }
    }
  }
  for (int j = 0; j < kBigPanels; ++j) {
    const int32_t n0 = (p0 + j) * kCpuPanelN;
    const __mmask16 mask = ValidLanes(v.n, n0);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    for (int32_t m = m0; m < m1; ++m) {
      const __m512 acc = _mm512_load_ps(facc + (size_t)(m - m0) * kLanes + j * kCpuPanelN);
      const __m512 out = bias ? _mm512_add_ps(acc, b) : acc;
      // Plain stores where all 16 channels are real: masked stores cost more here.
      if (mask == 0xffff) {
        _mm512_storeu_ps(y + (size_t)m * v.n + n0, out);
      } else {
        _mm512_mask_storeu_ps(y + (size_t)m * v.n + n0, mask, out);
      }
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
  // One or two tokens are bandwidth-bound: four panels at once (four weight streams per thread, each
  // software-prefetched) keep more loads in flight. With the packed weights in 2 MiB pages, four streams
  // beat one panel at a time on an AVX-512 EPYC, most at K = 5632 (docs/BENCHMARKS.md, "End to end",
  // four streams); in 4 KiB pages one stream had been faster.
  int32_t p_rest = t.p0;
  if (t.m1 - t.m0 <= 2) {
    const MicroFn fn = t.m1 - t.m0 == 1 ? (fp4 ? Micro<1, 4, true> : Micro<1, 4, false>) : (fp4 ? Micro<2, 4, true> : Micro<2, 4, false>);
    for (; p_rest + 4 <= t.p1; p_rest += 4) fn(v, a, bias, y, t.m0, p_rest);
  }
  // Large M, int4: 8 x 3 blocks first; leftover rows and panels take the general path below.
  if (!fp4 && t.m1 - t.m0 >= kBigMinRows && t.p1 - t.p0 >= kBigPanels) {
    const int32_t m_big = t.m0 + (t.m1 - t.m0) / kBigRows * kBigRows;
    const int32_t p_big = t.p0 + (t.p1 - t.p0) / kBigPanels * kBigPanels;
    for (int32_t p = t.p0; p < p_big; p += kBigPanels)
      for (int32_t m = t.m0; m < m_big; m += kBigBlockRows)
        BigBlock(v, a, bias, y, m, m + kBigBlockRows < m_big ? m + kBigBlockRows : m_big, p);
    if (m_big < t.m1) TileAvx512Vnni(v, a, bias, y, Tile{m_big, t.m1, t.p0, p_big});
    if (p_big < t.p1) TileAvx512Vnni(v, a, bias, y, Tile{t.m0, t.m1, p_big, t.p1});
    return;
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
