// Per-ISA building blocks of CachedAttention (attention.cpp), one per ISA in the dispatch table
// (dispatch.cpp): a dot product and a scaled add over one head's row, the softmax's exponentials,
// and the MLP's SwiGLU (W4A8MatMul's activation "swiglu").
#pragma once
#include <cstdint>

namespace w4a8::cpu::attention {

// sum_{i < n} a[i] * b[i] (summation order is the ISA's own).
using DotFn = float (*)(const float* a, const float* b, int32_t n);
// y[i] += s * x[i] for i < n.
using AxpyFn = void (*)(float* y, float s, const float* x, int32_t n);

// x[i] = exp(x[i] - shift) for i < n (-inf gives 0); returns their sum. The softmax of one row.
using ExpShiftSumFn = float (*)(float* x, int32_t n, float shift);
// out[i] = silu(gate[i]) * up[i] = gate[i] * up[i] / (1 + exp(-gate[i])): the SwiGLU of the MLP.
using SiluMulFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

float DotScalar(const float* a, const float* b, int32_t n);  // attention.cpp (std::exp)
void AxpyScalar(float* y, float s, const float* x, int32_t n);
float ExpShiftSumScalar(float* x, int32_t n, float shift);
void SiluMulScalar(const float* gate, const float* up, float* out, int64_t n);
float DotAvx2(const float* a, const float* b, int32_t n);  // attention_avx2.cpp (a degree-5 polynomial exp,
void AxpyAvx2(float* y, float s, const float* x, int32_t n);  // about 2 ulp)
float ExpShiftSumAvx2(float* x, int32_t n, float shift);
void SiluMulAvx2(const float* gate, const float* up, float* out, int64_t n);

}  // namespace w4a8::cpu::attention
