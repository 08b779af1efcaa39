// Per-ISA W4A16 kernels (w4a16_avx512.cpp, w4a16_avx2.cpp) and their threaded drivers (w4a16.cpp), which
// the dispatch table (dispatch.cpp) hands to GemmW4A16.
#pragma once
#include <cstdint>

#include "w4a8/cpu_kernels.h"
#include "w4a8/formats.h"

namespace w4a8::cpu::w4a16 {

// Two paths per ISA: up to kGemvMaxTokens tokens, codes are decoded in registers (GEMV style);
// beyond, weights are dequantized into small transposed fp32 panels reused by every token.
// Threads get row ranges starting at multiples of kRowAlign (the tallest panel).
constexpr int32_t kRowAlign = 32;

// Up to this many tokens the kernels decode codes in registers (GEMV style) instead of building
// a panel: decoding per token tile is cheaper than storing and reloading fp32 weights.
constexpr int32_t kGemvMaxTokens = 8;  // AVX2
// The AVX-512 panels (decoded by gathers) win from 5 tokens on (single-thread A/B on Zen 5).
constexpr int32_t kGemvMaxTokensAvx512 = 4;

// Sums of x over each weight K-group, for tokens [0, mt) of x: xsum[t * blocks + b].
inline void GroupSums(const QuantizedWeight& w, const float* x, int32_t mt, float* xsum) {
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  for (int32_t t = 0; t < mt; ++t)
    for (int32_t b = 0; b < blocks; ++b) {
      float s = 0.f;
      const int32_t end = (b + 1) * w.group_size < w.k ? (b + 1) * w.group_size : w.k;
      for (int32_t k = b * w.group_size; k < end; ++k) s += x[(size_t)t * w.k + k];
      xsum[(size_t)t * blocks + b] = s;
    }
}

// x of tokens [0, mt) into xp [mt][kpad], zero past K; with groups of 32 or more, each run of 32 k
// becomes (the 16 even k, then the 16 odd k), the order of (low nibbles, high nibbles) of 16 code bytes.
inline void PermuteForNibbles(const QuantizedWeight& w, const float* x, int32_t mt, int32_t kpad, float* xp) {
  for (int32_t t = 0; t < mt; ++t) {
    const float* xt = x + (size_t)t * w.k;
    float* out = xp + (size_t)t * kpad;
    for (int32_t k = 0; k < kpad; ++k) {
      int32_t src = k;
      if (w.group_size >= 32) {
        const int32_t base = k & ~31, i = k & 31;
        src = base + (i < 16 ? 2 * i : 2 * (i - 16) + 1);
      }
      out[k] = src < w.k ? xt[src] : 0.f;
    }
  }
}

// ---- the packed path (GemmW4A16Packed): the CPU packed layout of formats.h ----------------------
// Position p of a packed chunk's dword (byte p / 2, low nibble for even p) holds k = p / 2 + 4 (p % 2).
constexpr int32_t kChunkPositionK[8] = {0, 4, 1, 5, 2, 6, 3, 7};
// int4 kernels read the nibble at position p in place, as q * 2^kChunkPositionShift[p] (an AND, then a
// signed convert: position 7 is shifted down 4 bits first to stay below 2^31), and multiply it by
// x[k] * 2^-kChunkPositionShift[p]: the same product, exactly, without a shift per nibble.
constexpr int32_t kChunkPositionShift[8] = {0, 4, 8, 12, 16, 20, 24, 24};

// Up to this many tokens the AVX-512 packed kernel decodes nibbles per token tile; beyond, it
// dequantizes each panel once into fp32 (bench_cpu_w4a16 on Zen 4: the tiles win at 32, lose at 128).
constexpr int32_t kPackedGemvMaxTokens = 32;
constexpr int32_t kPackedGemvMaxTokensAvx2 = 16;  // (4-token tiles there)

// The activations of one call as the packed kernels read them (w4a16.cpp prepares them once).
struct PackedActs {
  const float* x = nullptr;       // [m][k] as given (the scalar reference reads these)
  const float* scaled = nullptr;  // [m][k_padded]: int4 x[k] * 2^-shift(position of k), fp4 x[k]; 0 past K
  const float* group_sums = nullptr;  // [m][blocks_per_row]: sum of x over each K-group
};

// Rows of panels [p0, p1) for all m tokens: y[t][n] (+ bias[n]). Scalar: the reference (double sums
// of x times CpuPackedDequantizeAt); the SIMD kernels are held to it.
void PackedPanelsScalar(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1);
void PackedPanelsAvx2(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1);
void PackedPanelsAvx512(const CpuPackedView& v, const PackedActs& acts, int32_t m, const float* bias, float* y, int32_t p0, int32_t p1);

// y[t][n] for all tokens t and rows n in [n0, n1) (n0 a multiple of kRowAlign), fp32 accumulation.
// False only when the panel cannot be allocated.
bool RowsAvx512(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);
bool RowsAvx2(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);

// The whole product on the thread pool, rows split at kRowAlign (w4a16.cpp).
Status GemmAvx512(const QuantizedWeight& w, const GemmArgs& a);
Status GemmAvx2(const QuantizedWeight& w, const GemmArgs& a);

}  // namespace w4a8::cpu::w4a16
