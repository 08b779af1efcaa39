// The com.w4a8 custom-op domain for ONNX Runtime: op W4A8MatMul, run by the CPU kernels.
//
//   Y = W4A8MatMul(A, codes, scales[, zero_points[, bias[, lowrank_u, lowrank_v[, kron_a, kron_b
//                  [, lowrank_u_scale, lowrank_v_scale]]]]])
//     A            float or float16 [..., K]
//     codes        uint8 [N, blocks, block_size / 2]   canonical layout (formats.h), an initializer
//     scales       float [N * blocks]                  an initializer
//     zero_points  uint8 [N * ceil(blocks / 2)]        optional (int4 asymmetric), an initializer
//     bias         float or float16 [N]                optional
//     lowrank_u    float or float16 [K, r]  } optional pair: Y += (A U) V (LoRC / LoRA correction)
//     lowrank_v    float or float16 [r, N]  }
//     kron_a       float or float16 [R, k1, n1]  } optional pair, k1 * k2 = K, n1 * n2 = N:
//     kron_b       float or float16 [R, k2, n2]  } Y += A (sum_i kron_a[i] (x) kron_b[i])
//   or the low-rank pair in int8 (formats.h Int8Rows; a quarter of the fp32 bytes a decode step reads):
//     lowrank_u    int8 [r, K]   U transposed, one scale per row: U[k][c] = lowrank_u[c][k] * lowrank_u_scale[c]
//     lowrank_v    int8 [r, N]   V[c][n] = lowrank_v[c][n] * lowrank_v_scale[c]
//     lowrank_u_scale, lowrank_v_scale   float [r]   inputs 9 and 10, required with int8 factors
//     Y            the type of A, [..., N]
//   attributes: K, N, bits (4), block_size, weight_format "int4" | "fp4",
//               activation_format "int8" | "fp8" | "none" (W4A16),
//               activation "none" | "swiglu": with swiglu (N even; the weight holds an MLP's gate columns
//               then its up columns) Y is [..., N / 2] = silu(P[..., :N/2]) * P[..., N/2:] of the product P
//
// Numerics: activations are quantized per token (the whole row of K, act_quant_def.h), the
// quantizer of the `sim` export: int8 runs GemmW4A8 (ActQuant::kPerToken) on weights prepacked once
// at kernel creation; fp8 fake-quantizes each row to E4M3 then runs W4A16; none runs W4A16, which
// reads ORT's own initializer arrays with no copy. The correction terms read A before its
// quantization, in fp32 (the sim export's side branch does the same), and are added after the
// quantized product: the low-rank term by cpu::LowRankAdd, the Kronecker sum by
// cpu::KroneckerAdapterAdd (never materialized). Int8 low-rank factors are the exception: their term
// is integer arithmetic on per-token int8 activations (cpu_adapters.h, LowRankInt8Term), and with
// activation_format "int8" it runs inside the GEMM call on the GEMM's own quantized A
// (cpu::GemmW4A8LowRankInt8; otherwise cpu::LowRankAddInt8 quantizes A itself). Constant factors are converted once at kernel
// creation; factors that are graph inputs (or initializers overridable as inputs) are read on every
// run, which is how one session serves several adapters (docs/ARCHITECTURE.md).
#pragma once
#include "w4a8/ort_abi.h"

namespace w4a8::ort {

constexpr const char* kOpDomain = "com.w4a8";
constexpr const char* kOpType = "W4A8MatMul";

// The decoder's other steps as single nodes (decoder_ops.h; written by lib/export/fuse_decoder.ts), fp32:
//
//   output, present_key, present_value = CachedAttention(query[, key, value], past_key, past_value,
//                                                        attention_mask, position_ids, cos_cache, sin_cache)
//     query [batch, seq, num_heads * head_size], or [.., (num_heads + 2 kv_num_heads) * head_size]
//           with key and value packed after it (key and value left out)
//     key, value [batch, seq, kv_num_heads * head_size]   rotary is applied here, to query and key
//     past_key, past_value [batch, kv_num_heads, past, head_size]; attention_mask int64 [batch, past + seq];
//     position_ids int64 [batch, seq] (optional: left out, a prompt into an empty cache is at 0..seq-1 and
//     later tokens end at the row's count of mask ones - 1, as GroupQueryAttention derives them);
//     cos_cache, sin_cache [rows, head_size / 2]
//     output [batch, seq, num_heads * head_size]; present_* [batch, kv_num_heads, past + seq, head_size]
//   or, the cache in one buffer across steps: past_* [batch, kv_num_heads, capacity, head_size] of which
//     the first (mask length - seq) rows are filled, attention_mask [batch, filled + seq <= capacity];
//     present_* has past's shape (past with the new rows written); bound to past's memory (a
//     preallocated output), only the new rows are written: no copy of the cache per step
//   attributes: num_heads, kv_num_heads, scale (default 1 / sqrt(head_size)), rotary_interleaved (default 1:
//     pairs (2i, 2i + 1) as llama2.c; 0: pairs (i, i + head_size / 2) as Hugging Face LLaMA)
//
//   Y[, Sum] = RmsNorm(X, weight[, residual])   Sum = X + residual; Y = Sum / sqrt(mean(Sum^2) + epsilon) * weight
//   attribute: epsilon (default 1e-5)
constexpr const char* kAttentionOpType = "CachedAttention";
constexpr const char* kRmsNormOpType = "RmsNorm";

// The op definitions, one per type of A (static objects, valid for the life of the process).
const OrtCustomOp* W4A8MatMulOp(bool float16);
const OrtCustomOp* CachedAttentionOp();
const OrtCustomOp* RmsNormOp();
// Creates the com.w4a8 domain holding W4A8MatMul, CachedAttention and RmsNorm and adds it to `options`. The domain object must
// outlive every session created from `options`: it is kept for the life of the process.
OrtStatus* AddW4A8Domain(const OrtApi* api, OrtSessionOptions* options);

}  // namespace w4a8::ort
