// The CPU dispatch table (the MLAS way): one struct of function pointers per ISA, filled once in
// dispatch.cpp, read by the W4A8, W4A16 and Kronecker kernels and by linalg. Callers resolve the
// entries they need once per call, outside their loops. Every ISA's table is complete: where an ISA
// has no kernel of its own, its entry names the next lower ISA's kernel, so dispatch.cpp states
// every fallback in one place. The ISA itself comes from the one detector (isa.cpp, W4A8_ISA).
#pragma once
#include <cstdint>

#include "cpu/attention_internal.h"
#include "cpu/kron_internal.h"
#include "cpu/w4a16_internal.h"
#include "cpu/w4a8_internal.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"

namespace w4a8::cpu {

// Activation quantization of rows [m0, m1) into the W4A8 kernels' buffers (w4a8_internal.h).
using QuantizeRowsFn = void (*)(const float* x, int32_t k, int32_t group_size, ActQuant mode, int32_t m0,
                                int32_t m1, const w4a8k::QuantizedActs& a);
// One W4A8 tile: y for the tile's rows and panels (w4a8_internal.h).
using W4A8TileFn = void (*)(const CpuPackedView& v, const w4a8k::QuantizedActs& a, const float* bias, float* y,
                            const w4a8k::Tile& t);

// How GemmW4A8 runs m tokens on one ISA: the tile kernel and the shape of the tiles it is handed.
struct W4A8Plan {
  W4A8TileFn tile;
  int32_t panels_per_tile;
  int32_t rows_per_tile;
  int32_t row_multiple;  // activation rows are zero-padded to a multiple of this (AMX tiles: kAmxRows)
};
using W4A8PlanFn = W4A8Plan (*)(int32_t m);

// The whole W4A16 product after GemmW4A16's argument checks (w4a16.cpp).
using W4A16Fn = Status (*)(const QuantizedWeight& w, const GemmArgs& a);
// Panels [p0, p1) of the W4A16 product on a packed weight (w4a16_internal.h, PackedPanels*).
using W4A16PackedFn = void (*)(const CpuPackedView& v, const w4a16::PackedActs& acts, int32_t m, const float* bias, float* y,
                               int32_t p0, int32_t p1);

struct CpuDispatch {
  Isa isa;
  const char* name;  // IsaName(isa)
  // W4A8 (w4a8_gemm.cpp)
  QuantizeRowsFn quantize_rows;
  W4A8PlanFn w4a8_plan;
  // W4A16 (w4a16.cpp); scalar is the reference itself
  W4A16Fn w4a16;
  W4A16PackedFn w4a16_packed;
  // Kronecker adapter (kron.cpp)
  kron::MatMulAddFn kron_matmul_add;
  // Low-rank term with int8 factors (lowrank_int8.cpp)
  kron::Int8DotsFn int8_dots;
  kron::Int8RowsAddFn int8_rows_add;
  // Cached attention (attention.cpp): AVX-512 and AMX use AVX2's (a head of 64 is 8 AVX2 vectors)
  attention::DotFn attn_dot;
  attention::AxpyFn attn_axpy;
  attention::ScoresFn attn_scores;
  attention::ContextFn attn_context;
  attention::ExpShiftSumFn exp_shift_sum;
  attention::SiluMulFn silu_mul;
  // linalg: GemmF32/GemmF64 behind every routine in linalg.h; linalg.name is what GemmIsa() reports
  LinalgKernels linalg;
};

// The table of `isa`, available on this CPU or not (callers check IsaAvailable before running it);
// an out-of-range value gets the scalar table.
const CpuDispatch& DispatchFor(Isa isa);
// DispatchFor(DefaultIsa()): the kernels' and linalg's default.
const CpuDispatch& Dispatch();

}  // namespace w4a8::cpu
