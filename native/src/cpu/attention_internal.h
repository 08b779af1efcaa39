// Per-ISA building blocks of CachedAttention (attention.cpp), one per ISA in the dispatch table
// (dispatch.cpp): a dot product and a scaled add over one head's row, a decode step's scores (the
// query heads of one kv head against every cached key), the softmax's exponentials, and the MLP's
// SwiGLU (W4A8MatMul's activation "swiglu").
#pragma once
#include <cstdint>

namespace w4a8::cpu::attention {

// sum_{i < n} a[i] * b[i] (summation order is the ISA's own).
using DotFn = float (*)(const float* a, const float* b, int32_t n);
// y[i] += s * x[i] for i < n.
using AxpyFn = void (*)(float* y, float s, const float* x, int32_t n);

// scores[r * ld + j] = dot(q + r * hs, keys + j * hs, hs) for r < rows, j < cols: keys read in place,
// row-major as the cache holds them (a GEMM would first transpose them into panels, which cost a
// decode step more than the products).
using ScoresFn = void (*)(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld);
// out[r * ldo + c] = sum_{j < cols} p[r * ldp + j] * values[j * hs + c] for r < rows, c < hs: the
// weighted sum of the cached values, values read in place (summation in key order).
using ContextFn = void (*)(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo);

// x[i] = exp(x[i] - shift) for i < n (-inf gives 0); returns their sum. The softmax of one row.
using ExpShiftSumFn = float (*)(float* x, int32_t n, float shift);
// out[i] = silu(gate[i]) * up[i] = gate[i] * up[i] / (1 + exp(-gate[i])): the SwiGLU of the MLP.
using SiluMulFn = void (*)(const float* gate, const float* up, float* out, int64_t n);

float DotScalar(const float* a, const float* b, int32_t n);  // attention.cpp (std::exp)
void AxpyScalar(float* y, float s, const float* x, int32_t n);
void ScoresScalar(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld);
void ContextScalar(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo);
float ExpShiftSumScalar(float* x, int32_t n, float shift);
void SiluMulScalar(const float* gate, const float* up, float* out, int64_t n);
float DotAvx2(const float* a, const float* b, int32_t n);  // attention_avx2.cpp (a degree-5 polynomial exp,
void AxpyAvx2(float* y, float s, const float* x, int32_t n);  // about 2 ulp)
void ScoresAvx2(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld);
void ContextAvx2(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo);
float ExpShiftSumAvx2(float* x, int32_t n, float shift);
void SiluMulAvx2(const float* gate, const float* up, float* out, int64_t n);
void ScoresAvx512(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld);  // attention_avx512.cpp
void ContextAvx512(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo);

}  // namespace w4a8::cpu::attention
