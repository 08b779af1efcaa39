// Layout operations on plain row-major tensors (no quantization): used when importing
// checkpoints whose linear weights are stored [out, in] while ONNX MatMul wants [in, out].
#pragma once
#include <cstddef>

#include "w4a8/status.h"

namespace w4a8 {

// dst[c * rows + r] = src[r * cols + c] for a row-major [rows, cols] src; dst is [cols, rows].
// src and dst must not overlap. Cache-blocked; TransposeF32Ref is its scalar twin.
Status TransposeF32(const float* src, float* dst, size_t rows, size_t cols);
Status TransposeF32Ref(const float* src, float* dst, size_t rows, size_t cols);

// Rotary-embedding tables exactly as llama2.c's run.c computes them, in fp32 with powf/cosf/sinf:
// for position p and pair i < head_size/2, freq = 1 / theta^(2i / head_size) and
// cos[p * head_size/2 + i] = cos(p * freq), sin likewise. head_size must be even.
Status RopeTablesF32(size_t seq_len, size_t head_size, float theta, float* cos_out, float* sin_out);

}  // namespace w4a8
