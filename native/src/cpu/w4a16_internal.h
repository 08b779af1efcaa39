// Per-ISA W4A16 kernels (w4a16_avx512.cpp, w4a16_avx2.cpp) behind the dispatch in w4a16.cpp.
#pragma once
#include <cstdint>

#include "w4a8/cpu_kernels.h"
#include "w4a8/formats.h"

namespace w4a8::cpu::w4a16 {

// Output rows are computed in blocks of kRows: their weights are dequantized once into an fp32
// panel [kRows][k rounded up to the group size] and reused by every token of the call.
constexpr int32_t kRows = 4;

// y[t][n] for all tokens t and rows n in [n0, n1) (n0 a multiple of kRows), fp32 accumulation.
// False only when the panel cannot be allocated.
bool RowsAvx512(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);
bool RowsAvx2(const QuantizedWeight& w, const GemmArgs& a, int32_t n0, int32_t n1);

}  // namespace w4a8::cpu::w4a16
