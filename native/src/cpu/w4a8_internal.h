// Internals shared by the W4A8 CPU paths: the quantized-activation buffers and the per-ISA kernels
// that the dispatch table (dispatch.cpp) hands to w4a8_gemm.cpp.
#pragma once
#include <cstdint>
#include <functional>

#include "w4a8/cpu_kernels.h"
#include "w4a8/formats.h"

namespace w4a8::cpu::w4a8k {

// Activations after int8 quantization (see cpu_kernels.h for the numerics).
struct QuantizedActs {
  int32_t m;          // rows holding real tokens; rows up to m_rows are zero padding (AMX tiles)
  int32_t m_rows;     // allocated rows
  int32_t k_padded;   // = the weight's k_padded; q is zero for k >= K
  int32_t blocks;     // weight K-groups per row
  int8_t* q;          // [m_rows][k_padded]
  float* scale;       // [m_rows][blocks] x_scale per (token, group) (kPerToken: the row scale repeated)
  int32_t* sum;       // [m_rows][blocks] sum of q over the group (for the zero-point correction)
};

// Quantizes rows [m0, m1) of x ([m][k] fp32) into `a`. Identical results from every variant.
void QuantizeRowsScalar(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                        const QuantizedActs& a);
void QuantizeRowsAvx2(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                      const QuantizedActs& a);
void QuantizeRowsAvx512(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0, int32_t m1,
                        const QuantizedActs& a);

// One unit of work: output rows [m0, m1) x panels [p0, p1) (16 output channels per panel).
struct Tile {
  int32_t m0, m1, p0, p1;
};

// Each writes y[m][n] (row stride v.n) for the tile's rows and the real channels of its panels.
void TileScalar(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t);
void TileAvx2(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t);
void TileAvx512Vnni(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t);
// AMX: rows are processed in blocks of 32 (a.m_rows must cover them); falls back to AVX512 below 16 rows.
void TileAmx(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t);

// A one- or two-token GEMV's scales and zeros of group g in panel p, fetched ahead: the hardware prefetcher
// follows the code streams but not these lines beside them, and a miss there stalls the group's epilogue.
inline void PrefetchGroupMeta(const CpuPackedView& v, int32_t p, int32_t g) {
  const size_t meta = ((size_t)p * v.blocks_per_row + g) * kCpuPanelN;
  __builtin_prefetch(v.scales + meta);
  __builtin_prefetch(v.zeros + meta);
}

// Rows per AMX block (two 16-row A tiles); the activation buffer is padded to a multiple of it.
constexpr int32_t kAmxRows = 32;

// Activation rows per quantizing task of GemmW4A8 (the first of its two pool rounds).
constexpr int32_t kQuantRows = 8;

// Work that shares a GemmW4A8 call (the fused int8 low-rank term, lowrank_int8.cpp), each hook
// optional: `rows_quantized(m0, m1)` runs in the quantizing task right after it wrote activation rows
// [m0, m1) (it may read only those); `run(i)` for i < tasks runs in the same ParallelFor as the tiles,
// on the call's quantized activations (it must not touch y); `tile_written(m0, m1, j0, j1)` runs in a
// tile's task right after the kernel wrote y's rows [m0, m1) x columns [j0, j1), while they are in
// cache (it may update only those); `after` runs once the tiles are done, while the activations are
// still alive.
struct GemmSideWork {
  std::function<void(int32_t, int32_t, const QuantizedActs&)> rows_quantized;
  int64_t tasks = 0;
  std::function<void(int64_t, const QuantizedActs&)> run;
  std::function<void(int32_t, int32_t, int32_t, int32_t)> tile_written;
  std::function<Status(const QuantizedActs&)> after;
};
Status GemmW4A8WithSideWork(const PackedWeight& w, Isa isa, const GemmArgs& a, const GemmSideWork& side);

}  // namespace w4a8::cpu::w4a8k
