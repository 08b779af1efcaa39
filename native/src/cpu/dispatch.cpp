// The per-ISA dispatch tables (dispatch.h). Each row below is one ISA's complete choice of kernels;
// an entry naming another ISA's kernel is that ISA's fallback.
#include "cpu/dispatch.h"

#include "cpu/w4a16_internal.h"
#include "linalg/gemm_isa.h"
#include "w4a8/cpu_adapters.h"

namespace w4a8::cpu {
namespace {

// W4A8 tiles: panel blocks small enough to spread N over the threads at M = 1 (bandwidth-bound), row
// blocks that keep a panel block's weights in L2 while the rows stream past.
W4A8Plan PlanScalar(int32_t) { return {w4a8k::TileScalar, 4, 64, 1}; }
// AVX2: a tile of 32 rows or more takes the kernel's prefill path (BigBlock in w4a8_avx2.cpp).
W4A8Plan PlanAvx2(int32_t) { return {w4a8k::TileAvx2, 4, 64, 1}; }
// The AVX512-VNNI kernel's large-M block is 3 panels wide (w4a8_avx512vnni.cpp).
W4A8Plan PlanAvx512Vnni(int32_t m) { return {w4a8k::TileAvx512Vnni, m >= 8 ? 6 : 4, 64, 1}; }
// AMX takes all rows of two panels per tile so that each panel is unpacked to int8 once; below one
// 16-row A tile it runs the AVX512-VNNI plan.
W4A8Plan PlanAmx(int32_t m) {
  return m >= 16 ? W4A8Plan{w4a8k::TileAmx, 2, m, w4a8k::kAmxRows} : PlanAvx512Vnni(m);
}

constexpr LinalgKernels kLinalgGeneric{"generic", gemm_isa::generic::GemmF32, gemm_isa::generic::GemmF64};
constexpr LinalgKernels kLinalgAvx2{"avx2", gemm_isa::avx2::GemmF32, gemm_isa::avx2::GemmF64};
constexpr LinalgKernels kLinalgAvx512{"avx512", gemm_isa::avx512::GemmF32, gemm_isa::avx512::GemmF64};

// Indexed by (int)Isa.
constexpr CpuDispatch kTables[] = {
    {Isa::kScalar, "scalar",
     w4a8k::QuantizeRowsScalar,
     PlanScalar,
     GemmW4A16Reference,
     w4a16::PackedPanelsScalar,
     kron::MatMulAddScalar,
     kron::Int8DotsScalar,
     kron::Int8RowsAddScalar,
     attention::DotScalar,
     attention::AxpyScalar,
     attention::ScoresScalar,
     attention::ContextScalar,
     attention::ExpShiftSumScalar,
     attention::SiluMulScalar,
     kLinalgGeneric},  // SSE2-width vectors: the x86-64 baseline
    {Isa::kAvx2, "avx2",
     w4a8k::QuantizeRowsAvx2,
     PlanAvx2,
     w4a16::GemmAvx2,
     w4a16::PackedPanelsAvx2,
     kron::MatMulAddAvx2,
     kron::Int8DotsAvx2,
     kron::Int8RowsAddAvx2,
     attention::DotAvx2,
     attention::AxpyAvx2,
     attention::ScoresAvx2,
     attention::ContextAvx2,
     attention::ExpShiftSumAvx2,
     attention::SiluMulAvx2,
     kLinalgAvx2},
    {Isa::kAvx512Vnni, "avx512vnni",
     w4a8k::QuantizeRowsAvx512,
     PlanAvx512Vnni,
     w4a16::GemmAvx512,
     w4a16::PackedPanelsAvx512,
     kron::MatMulAddAvx512,
     kron::Int8DotsAvx512,
     kron::Int8RowsAddAvx512,
     attention::DotAvx2,
     attention::AxpyAvx2,
     attention::ScoresAvx512,
     attention::ContextAvx512,
     attention::ExpShiftSumAvx2,
     attention::SiluMulAvx2,
     kLinalgAvx512},
    // AMX has int8 tiles only: everything but the W4A8 tiles of 16 rows and more is AVX-512's.
    {Isa::kAmx, "amx",
     w4a8k::QuantizeRowsAvx512,
     PlanAmx,
     w4a16::GemmAvx512,
     w4a16::PackedPanelsAvx512,
     kron::MatMulAddAvx512,
     kron::Int8DotsAvx512,
     kron::Int8RowsAddAvx512,
     attention::DotAvx2,
     attention::AxpyAvx2,
     attention::ScoresAvx512,
     attention::ContextAvx512,
     attention::ExpShiftSumAvx2,
     attention::SiluMulAvx2,
     kLinalgAvx512},
};
static_assert(sizeof(kTables) / sizeof(kTables[0]) == 4, "one table per Isa");

}  // namespace

const CpuDispatch& DispatchFor(Isa isa) {
  const int i = (int)isa;
  return kTables[i >= 0 && i < 4 ? i : 0];
}

const CpuDispatch& Dispatch() {
  static const CpuDispatch& chosen = DispatchFor(DefaultIsa());
  return chosen;
}

}  // namespace w4a8::cpu
