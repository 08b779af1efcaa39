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

// y[t][n] for all tokens t and rows n in [n0, n1) (n0 a multiple of kRowAlign), fp32 accumulation.
// False only when the panel cannot be allocated.
bool RowsAvx512(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);
bool RowsAvx2(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);

// The whole product on the thread pool, rows split at kRowAlign (w4a16.cpp).
Status GemmAvx512(const QuantizedWeight& w, const GemmArgs& a);
Status GemmAvx2(const QuantizedWeight& w, const GemmArgs& a);

}  // namespace w4a8::cpu::w4a16
