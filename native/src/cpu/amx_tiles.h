// The AMX-INT8 W4A8 tile driver, written against a small "Tiles" interface so that the same code runs
// on the hardware (w4a8_amx.cpp) and on a scalar emulation of the documented tile semantics in the
// tests (test_cpu_gemm_amx_emulated.cpp), which machines without AMX can still check.
//
// Per tile of the output (all rows x two panels = 32 channels):
//   1. unpack the two panels' 4-bit codes once into signed int8 weights u - zero, in the VNNI order of
//      an AMX B operand: row r = 4 consecutive k (k = 4r..4r+3), 64 bytes = 16 channels x those 4 k.
//      A packed chunk's low nibbles are exactly B row 2c and its high nibbles B row 2c + 1.
//   2. for each block of 32 token rows and each K-group: C[2x2 tiles of 16x16 int32] = sum over the
//      group of A (int8 activations, 16 rows x kstep bytes) . B (kstep/4 rows x 64 bytes) via tdpbssd;
//      store C, then fold it into fp32 accumulators exactly as the reference does.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/w4a8_internal.h"

namespace w4a8::cpu::w4a8k {

// The 64-byte operand of ldtilecfg (palette 1).
struct alignas(64) AmxTileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(AmxTileConfig) == 64, "ldtilecfg reads exactly 64 bytes");

// Tile registers: 0..3 accumulators C[i][j] = rows 16i.. x panel j; 4, 5 activations; 6, 7 weights.
constexpr int kAmxC00 = 0, kAmxC01 = 1, kAmxC10 = 2, kAmxC11 = 3, kAmxA0 = 4, kAmxA1 = 5, kAmxB0 = 6, kAmxB1 = 7;

inline AmxTileConfig MakeAmxTileConfig(int32_t kstep) {
  AmxTileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = kAmxC00; t <= kAmxC11; ++t) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
  for (int t = kAmxA0; t <= kAmxA1; ++t) { cfg.rows[t] = 16; cfg.colsb[t] = (uint16_t)kstep; }
  for (int t = kAmxB0; t <= kAmxB1; ++t) { cfg.rows[t] = (uint8_t)(kstep / 4); cfg.colsb[t] = 64; }
  return cfg;
}

// Signed int8 weights of panel p in AMX B order: out[k_padded / 4][64].
inline void UnpackPanelForAmx(const CpuPackedView& v, int32_t p, int8_t* out) {
  int8_t u8_of_code[16];
  for (int c = 0; c < 16; ++c) u8_of_code[c] = (int8_t)CpuWeightU8(v.format, c);
  const int32_t chunks = v.k_padded / kCpuChunkK, chunks_per_group = v.group_size / kCpuChunkK;
  const uint8_t* src = v.codes + (size_t)p * chunks * kCpuChunkBytes;
  for (int32_t c = 0; c < chunks; ++c) {
    const uint8_t* zeros = v.zeros + ((size_t)p * v.blocks_per_row + c / chunks_per_group) * kCpuPanelN;
    int8_t* lo = out + (size_t)(2 * c) * 64;
    int8_t* hi = lo + 64;
    for (int j = 0; j < 64; ++j) {
      const uint8_t byte = src[(size_t)c * kCpuChunkBytes + j];
      lo[j] = (int8_t)(u8_of_code[byte & 0x0f] - zeros[j / 4]);
      hi[j] = (int8_t)(u8_of_code[byte >> 4] - zeros[j / 4]);
    }
  }
}

// Folds one group's int32 tile results into the fp32 accumulators, exactly as the reference does:
// facc[r][16 j + lane] = fma((float)C, x_scale[r] * w_scale_j[lane], facc). c_buf is [2 i + j][16][16]
// for rows 16 i.., panel j; x_scale[r * x_stride] is row r's activation scale for this group.
inline void AmxFoldGroupScalar(const int32_t (*c_buf)[16][16], int32_t rows, int32_t panels, const float* x_scale,
                               size_t x_stride, const float* const w_scale[2], float (*facc)[2 * kCpuPanelN]) {
  for (int32_t j = 0; j < panels; ++j) {
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t* isum = c_buf[(r / 16) * 2 + j][r % 16];
      const float xs = x_scale[(size_t)r * x_stride];
      float* acc = facc[r] + j * kCpuPanelN;
      for (int lane = 0; lane < kCpuPanelN; ++lane) acc[lane] = std::fma((float)isum[lane], xs * w_scale[j][lane], acc[lane]);
    }
  }
}

// The driver's non-tile work, portable: the emulation tests use these; the hardware path passes the
// AVX512 twins (w4a8_avx512vnni.cpp), which test_cpu_gemm_amx_emulated checks against these.
struct AmxScalarHelpers {
  static void Unpack(const CpuPackedView& v, int32_t p, int8_t* out) { UnpackPanelForAmx(v, p, out); }
  static void Fold(const int32_t (*c_buf)[16][16], int32_t rows, int32_t panels, const float* x_scale, size_t x_stride,
                   const float* const w_scale[2], float (*facc)[2 * kCpuPanelN]) {
    AmxFoldGroupScalar(c_buf, rows, panels, x_scale, x_stride, w_scale, facc);
  }
};

// AVX512 twins of the helpers above (amx_helpers_avx512.cpp), bit-identical; the hardware path uses them.
void UnpackPanelForAmxAvx512(const CpuPackedView& v, int32_t p, int8_t* out);
void AmxFoldGroupAvx512(const int32_t (*c_buf)[16][16], int32_t rows, int32_t panels, const float* x_scale,
                        size_t x_stride, const float* const w_scale[2], float (*facc)[2 * kCpuPanelN]);
struct AmxAvx512Helpers {
  static void Unpack(const CpuPackedView& v, int32_t p, int8_t* out) { UnpackPanelForAmxAvx512(v, p, out); }
  static void Fold(const int32_t (*c_buf)[16][16], int32_t rows, int32_t panels, const float* x_scale, size_t x_stride,
                   const float* const w_scale[2], float (*facc)[2 * kCpuPanelN]) {
    AmxFoldGroupAvx512(c_buf, rows, panels, x_scale, x_stride, w_scale, facc);
  }
};

// Computes the output tile t (rows t.m0.. in blocks of kAmxRows inside a.m_rows, at most two panels).
template <class Tiles, class Helpers = AmxScalarHelpers>
void AmxTileDriver(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t) {
  const int32_t panels = std::min<int32_t>(2, t.p1 - t.p0);
  const size_t panel_b_bytes = (size_t)v.k_padded * kCpuPanelN;  // k_padded / 4 rows x 64 bytes
  thread_local std::vector<int8_t> b_buf;
  b_buf.resize(2 * panel_b_bytes);
  for (int32_t j = 0; j < panels; ++j) Helpers::Unpack(v, t.p0 + j, b_buf.data() + j * panel_b_bytes);
  // a missing second panel multiplies as zeros (its results are never stored)
  if (panels == 1) std::memset(b_buf.data() + panel_b_bytes, 0, panel_b_bytes);

  const int32_t kstep = std::min<int32_t>(v.group_size, 64);
  const AmxTileConfig cfg = MakeAmxTileConfig(kstep);
  Tiles::Configure(&cfg);
  alignas(64) int32_t c_buf[4][16][16];
  alignas(64) float facc[kAmxRows][2 * kCpuPanelN];
  const size_t lda = (size_t)a.k_padded;
  for (int32_t mb = t.m0; mb < t.m1; mb += kAmxRows) {
    std::fill(&facc[0][0], &facc[0][0] + kAmxRows * 2 * kCpuPanelN, 0.0f);
    const int32_t rows = std::min<int32_t>(kAmxRows, t.m1 - mb);
    for (int32_t g = 0; g < v.blocks_per_row; ++g) {
      Tiles::template Zero<kAmxC00>();
      Tiles::template Zero<kAmxC01>();
      Tiles::template Zero<kAmxC10>();
      Tiles::template Zero<kAmxC11>();
      for (int32_t k = g * v.group_size; k < (g + 1) * v.group_size; k += kstep) {
        Tiles::template Load<kAmxA0>(a.q + (size_t)mb * lda + k, lda);
        Tiles::template Load<kAmxA1>(a.q + (size_t)(mb + 16) * lda + k, lda);
        Tiles::template Load<kAmxB0>(b_buf.data() + (size_t)(k / 4) * 64, 64);
        Tiles::template Load<kAmxB1>(b_buf.data() + panel_b_bytes + (size_t)(k / 4) * 64, 64);
        Tiles::template DotSS<kAmxC00, kAmxA0, kAmxB0>();
        Tiles::template DotSS<kAmxC01, kAmxA0, kAmxB1>();
        Tiles::template DotSS<kAmxC10, kAmxA1, kAmxB0>();
        Tiles::template DotSS<kAmxC11, kAmxA1, kAmxB1>();
      }
      Tiles::template Store<kAmxC00>(&c_buf[0][0][0], 64);
      Tiles::template Store<kAmxC01>(&c_buf[1][0][0], 64);
      Tiles::template Store<kAmxC10>(&c_buf[2][0][0], 64);
      Tiles::template Store<kAmxC11>(&c_buf[3][0][0], 64);
      const float* w_scale[2];
      for (int32_t j = 0; j < 2; ++j) {
        w_scale[j] = v.scales + ((size_t)(t.p0 + std::min(j, panels - 1)) * v.blocks_per_row + g) * kCpuPanelN;
      }
      Helpers::Fold(c_buf, rows, panels, a.scale + (size_t)mb * a.blocks + g, (size_t)a.blocks, w_scale, facc);
    }
    for (int32_t j = 0; j < panels; ++j) {
      const int32_t n0 = (t.p0 + j) * kCpuPanelN, lanes = std::min<int32_t>(kCpuPanelN, v.n - n0);
      for (int32_t r = 0; r < rows; ++r) {
        float* out = y + (size_t)(mb + r) * v.n + n0;
        const float* acc = facc[r] + j * kCpuPanelN;
        for (int32_t lane = 0; lane < lanes; ++lane) out[lane] = bias ? acc[lane] + bias[n0 + lane] : acc[lane];
      }
    }
  }
  Tiles::Release();
}

}  // namespace w4a8::cpu::w4a8k
