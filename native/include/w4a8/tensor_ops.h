// Layout operations on plain row-major tensors (no quantization): used when importing
// checkpoints whose linear weights are stored [out, in] while ONNX MatMul wants [in, out].
#pragma once
#include <cstddef>
#include <cstdint>

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

// ---- int4 nibble transpose (the QDQ export's INT4 / UINT4 initializers) ------------------------
// `packed` is a [rows][packed_cols] byte matrix holding [rows][2 * packed_cols] 4-bit values, low
// nibble first (the quantizer's canonical codes [N][blocks][group/2] viewed as rows = N). out gets
// the first valid_cols columns transposed, [valid_cols][rows], packed along the flattened result as
// ONNX INT4/UINT4 store it: element j in byte j / 2, low nibble for even j. An odd element count
// leaves the last high nibble as padding, always 0. flip_sign maps each offset-8 code q to the two's
// complement int4 q - 8 (q XOR 8). out holds TransposedNibbleBytes(rows, valid_cols) bytes and must
// not overlap packed; valid_cols <= 2 * packed_cols. TransposeNibblesRef is the scalar definition.
inline size_t TransposedNibbleBytes(size_t rows, size_t valid_cols) { return (rows * valid_cols + 1) / 2; }
Status TransposeNibbles(const uint8_t* packed, size_t rows, size_t packed_cols, size_t valid_cols, bool flip_sign,
                        uint8_t* out);
Status TransposeNibblesRef(const uint8_t* packed, size_t rows, size_t packed_cols, size_t valid_cols, bool flip_sign,
                           uint8_t* out);

// ---- element-wise fp32 (AWQ's 1 / s, a norm weight divided by s) -------------------------------
// out[i] = a[i] / b[i] and out[i] = 1 / a[i], IEEE fp32 (correctly rounded, as ONNX Div/Reciprocal).
// out may equal an input; partial overlaps are refused.
Status DivideF32(const float* a, const float* b, float* out, size_t n);
Status ReciprocalF32(const float* a, float* out, size_t n);

// ---- a factor given as a product (PEFT LoKr's w1_a @ w1_b) multiplied out ----------------------
// out = alpha * (left [rows][rank] @ right [rank][cols]), [rows][cols], or its transpose [cols][rows]
// with `transpose_out` (the fused W4A8MatMul reads Kronecker factors in MatMul orientation). By the
// blocked GemmF32; MatrixProductF32Ref (fp64 triple loop) is its definition. out must not overlap.
Status MatrixProductF32(const float* left, const float* right, size_t rows, size_t rank, size_t cols, float alpha,
                        bool transpose_out, float* out);
Status MatrixProductF32Ref(const float* left, const float* right, size_t rows, size_t rank, size_t cols, float alpha,
                           bool transpose_out, float* out);

}  // namespace w4a8
