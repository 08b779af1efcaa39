// Per-ISA building blocks of CachedAttention (attention.cpp), one per ISA in the dispatch table
// (dispatch.cpp): a dot product and a scaled add over one head's row.
#pragma once
#include <cstdint>

namespace w4a8::cpu::attention {

// sum_{i < n} a[i] * b[i] (summation order is the ISA's own).
using DotFn = float (*)(const float* a, const float* b, int32_t n);
// y[i] += s * x[i] for i < n.
using AxpyFn = void (*)(float* y, float s, const float* x, int32_t n);

float DotScalar(const float* a, const float* b, int32_t n);  // attention.cpp
void AxpyScalar(float* y, float s, const float* x, int32_t n);
float DotAvx2(const float* a, const float* b, int32_t n);  // attention_avx2.cpp
void AxpyAvx2(float* y, float s, const float* x, int32_t n);

}  // namespace w4a8::cpu::attention
