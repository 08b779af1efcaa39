// The decoder's non-linear steps as single kernels, for the fused graph of `--format w4a8`
// (lib/export/fuse_decoder.ts): attention over a key/value cache with rotary embedding and
// grouped-query heads, and RMSNorm. In the standard-op graph these are ~60 nodes per layer whose
// per-node cost, and the grouped-query Expand that copies the whole cache every step, cost a decode
// step as much as the int4 weights (docs/BENCHMARKS.md, "End to end"). fp32 only.
#pragma once
#include <cstdint>

#include "w4a8/cpu_kernels.h"
#include "w4a8/status.h"

namespace w4a8::cpu {

// One call of cached attention, all row-major:
//   q        [batch, seq, heads * head_size]       (row stride q_stride >= heads * head_size)
//   k, v     [batch, seq, kv_heads * head_size]    (row stride kv_stride; k and v may be columns
//                                                   of one packed [.., q | k | v] row)
//   past_k, past_v      [batch, kv_heads, past, head_size]   (null when past == 0)
//   mask     int64 [batch, past + seq]: 0 hides a key (padding)
//   positions int64 [batch, seq]: rotary position of each new token, in [0, rope_rows)
//   cos, sin [rope_rows, head_size / 2]
//   out      [batch, seq, heads * head_size]
//   present_k, present_v [batch, kv_heads, past + seq, head_size]: the past, then the new keys
//                        (rotated) and values
// With capacity > 0 (a cache kept in one buffer across steps, as ONNX Runtime GenAI's shared
// past/present): past_k/v and present_k/v are all [batch, kv_heads, capacity, head_size] with
// past + seq <= capacity; present is past with rows [past, past + seq) replaced by the new keys and
// values. When present aliases past (the same memory) only those rows are written; otherwise past
// is copied whole first. past_k/v may then not be null even when past == 0.
// Query s of batch b sits at absolute position past + s and sees key j when j <= past + s and
// mask[b][j] != 0; query head h reads kv head h / (heads / kv_heads). Rotary pairs are the
// interleaved (2i, 2i + 1) of llama2.c's run.c. Scores are scale * q.k, softmax in fp32. A query
// that sees no key (only possible under padding) gets zeros.
struct AttentionArgs {
  int32_t batch = 0, seq = 0, past = 0, heads = 0, kv_heads = 0, head_size = 0, rope_rows = 0;
  int32_t capacity = 0;  // 0: present holds past + seq rows per head; else the shared buffer above
  // Rotary pairs: (2i, 2i + 1) (llama2.c, ORT's rotary_interleaved = 1) or, false, (i, i + head_size / 2)
  // (Hugging Face LLaMA's rotate_half, ORT's default); both take angle i's cos and sin.
  bool rotary_interleaved = true;
  int64_t q_stride = 0, kv_stride = 0;
  float scale = 0.0f;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* past_k = nullptr;
  const float* past_v = nullptr;
  const int64_t* mask = nullptr;
  const int64_t* positions = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  float* out = nullptr;
  float* present_k = nullptr;
  float* present_v = nullptr;
};

// kInvalidArgument for inconsistent shapes, a position outside the table, or a null array; the
// work is spread over (batch, head) tasks on the pool (cpu::ParallelFor).
Status CachedAttention(const AttentionArgs& a, Isa isa = DefaultIsa());
// The straightforward loops in double, the reference the ISA versions are held to (tests).
Status CachedAttentionReference(const AttentionArgs& a);

// The MLP's SwiGLU on rows of [gate | up] (2 f values each, a fused gate-and-up W4A8MatMul's output):
// out[r][i] = silu(gate[r][i]) * up[r][i], silu(x) = x / (1 + exp(-x)).
Status SwiGlu(const float* y, int64_t rows, int32_t f, float* out, Isa isa = DefaultIsa());

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for `rows` rows of `dim`; with `residual`
// (nullable) x[r] + residual[r] is normalized instead and written to sum_out (nullable) too: the
// decoder's "add the block's output, then normalize" in one pass. Sums in double.
Status RmsNorm(const float* x, const float* residual, const float* weight, int64_t rows, int32_t dim, float eps,
               float* y, float* sum_out);

}  // namespace w4a8::cpu
