// Scalar kernel on the packed layout: the portable fallback, and a check of the layout itself.
#include <cmath>

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {

void TileScalar(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t) {
  const size_t chunks_per_panel = (size_t)v.k_padded / kCpuChunkK;
  int u8_of_code[16];
  for (int c = 0; c < 16; ++c) u8_of_code[c] = CpuWeightU8(v.format, c);
  for (int32_t p = t.p0; p < t.p1; ++p) {
    const uint8_t* panel = v.codes + (size_t)p * chunks_per_panel * kCpuChunkBytes;
    for (int32_t lane = 0; lane < kCpuPanelN; ++lane) {
      const int32_t n = p * kCpuPanelN + lane;
      if (n >= v.n) break;
      for (int32_t m = t.m0; m < t.m1; ++m) {
        const int8_t* xq = a.q + (size_t)m * a.k_padded;
        float acc = 0.0f;
        for (int32_t b = 0; b < v.blocks_per_row; ++b) {
          const size_t meta = ((size_t)p * v.blocks_per_row + b) * kCpuPanelN + lane;
          int32_t dot = 0;  // sum of x_q * u over the group; the zero point is applied once below
          for (int32_t k = b * v.group_size; k < (b + 1) * v.group_size; k += kCpuChunkK) {
            const uint8_t* bytes = panel + (size_t)(k / kCpuChunkK) * kCpuChunkBytes + 4 * lane;
            for (int kk = 0; kk < 4; ++kk) {
              dot += (int32_t)xq[k + kk] * u8_of_code[bytes[kk] & 0x0f];
              dot += (int32_t)xq[k + 4 + kk] * u8_of_code[bytes[kk] >> 4];
            }
          }
          const int32_t isum = dot - (int32_t)v.zeros[meta] * a.sum[(size_t)m * a.blocks + b];
          acc = std::fma((float)isum, a.scale[(size_t)m * a.blocks + b] * v.scales[meta], acc);
        }
        y[(size_t)m * v.n + n] = bias ? acc + bias[n] : acc;
      }
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
