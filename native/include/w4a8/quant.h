// Weight quantizers (RTN, AWQ search, GPTQ), activation fake-quantization and the layer output
// error that ranks them. Plain structs in, Status out; nothing here throws.
//
// Input weights are ONNX MatMul B matrices: W[K][N] fp32 row-major (y = x W, K inputs, N outputs).
// Outputs are the canonical MatMulNBits layout of formats.h plus the dequantized W'[K][N].
//
// Numerics (the reference semantics; every fast path is tested bit-exact against quant/rtn_ref.cpp):
//   round(x) = nearbyint (ties to even); x / scale is an fp32 division.
//   int4 symmetric:  scale = r * absmax / 7,            q = clamp(round(w / scale), -8, 7), code = q + 8
//   int4 asymmetric: lo = r * min(min, 0), hi = r * max(max, 0) (zero always representable),
//                    scale = (hi - lo) / 15, zp = clamp(round(-lo / scale), 0, 15),
//                    code = clamp(round(w / scale) + zp, 0, 15)
//   fp4 E2M1:        scale = r * absmax / 6, code = nearest E2M1 of w / scale (ties to even mantissa,
//                    saturating at 6)
//   r is the clip ratio (per call, or per group for AWQ's clip search); pow2 scales round the scale
//   UP to a power of two (nothing clips). A group whose range is 0 gets scale 0 and every code equal
//   to its zero point (8 symmetric, 0 fp4), so it dequantizes to exact zeros.
//   Dequantized: (code - zp) * scale, or E2M1(code) * scale, in fp32 (formats.h DequantizeAt).
#pragma once
#include <cstddef>
#include <cstdint>

#include "w4a8/formats.h"
#include "w4a8/status.h"

namespace w4a8 {

// Where the groups run: along K within one output channel (the canonical layout, "oc"), or along
// N within one input channel (AdaDim's layout, "ic"; only dequantized output and error metrics).
enum class Grouping : int32_t { kAlongK = 0, kAlongN = 1 };

struct WeightQuantConfig {
  WeightFormat format = WeightFormat::kInt4;
  bool symmetric = false;      // int4 only; fp4 is always symmetric
  int32_t group_size = 128;    // 16, 32, 64, 128, 256; 0 = one group per channel (true per channel)
  Grouping grouping = Grouping::kAlongK;
  bool pow2_scales = false;
  float clip_ratio = 1.0f;     // (0, 1]
  // Per-channel quantization (group_size 0) in the canonical layout: the block size whose blocks all
  // repeat the channel's one scale and zero point (16..256, a size every kernel and MatMulNBits
  // handles), or 0 for a single block of K rounded up to a power of two.
  int32_t per_channel_block = 128;
};

// kInvalidArgument unless the config is one of the supported combinations.
Status CheckWeightQuantConfig(const WeightQuantConfig& cfg);

// The block size of the canonical layout: group_size, or for per-channel quantization
// per_channel_block (each block repeats the channel's scale), or when that is 0, K rounded up to a
// power of two >= 16 (one block per row; codes past K are padding).
int32_t LayoutGroupSize(const WeightQuantConfig& cfg, int32_t k);
bool HasZeroPoints(const WeightQuantConfig& cfg);  // int4 asymmetric

// Output buffers (caller-owned). Sizes, for grouping kAlongK with G = LayoutGroupSize:
//   codes CodeBytes(N, K, G), scales ScaleCount(N, K, G), zero_points ZeroPointBytes(N, K, G) (asym only),
//   dequantized K * N (may be null).
// For grouping kAlongN with g = group_size or N (per channel), B = ceil(N / g):
//   codes K * N (one code per byte), scales K * B, zero_points K * B (one per byte, asym only).
struct QuantizedOutputs {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  uint8_t* zero_points = nullptr;
  float* dequantized = nullptr;
};

size_t QuantCodeBytes(const WeightQuantConfig& cfg, int32_t k, int32_t n);
size_t QuantScaleCount(const WeightQuantConfig& cfg, int32_t k, int32_t n);
size_t QuantZeroPointBytes(const WeightQuantConfig& cfg, int32_t k, int32_t n);  // 0 without zero points

// Round-to-nearest quantization of W[K][N]. group_clip (optional, kAlongK only) gives a clip ratio
// per scale [N][layout blocks] that replaces cfg.clip_ratio (a per-channel group reads its first
// block's entry). kNumericalError on NaN/Inf in W.
Status QuantizeWeight(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                      const QuantizedOutputs& out, int threads = 0);
// Scalar reference twin (per element, per group, no blocking): the tests hold QuantizeWeight to it.
Status QuantizeWeightRef(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                         const QuantizedOutputs& out);

// ---- activations ---------------------------------------------------------------------------
enum class ActFormat : int32_t { kNone = 0, kInt8 = 1, kFp8E4M3 = 2 };

// Per-token (per row) dynamic symmetric fake quantization of X[M][K] into out (may equal x), with
// the kernels' numerics, defined once in act_quant_def.h (qmax = 127 for int8, 448 for fp8):
//   amax = max |x| of the row, inv = min(qmax / amax, FLT_MAX) (0 when amax == 0), scale = amax / qmax
//   int8: q = clamp(round_half_even(x * inv), -127, 127)
//   fp8:  q = E4M3FN(x * inv), round to nearest even, saturating to +-448 (ONNX Cast to
//         FLOAT8E4M3FN with saturate=1)
//   out = q * scale
// The simulated export (lib/export/act_quant_graph.ts) builds the same steps from ONNX ops and
// agrees bit for bit. A row of zeros gets scale 0 and stays zero. row_scales (optional) receives the
// M scales.
Status FakeQuantActivations(const float* x, int64_t m, int64_t k, ActFormat fmt, float* out, float* row_scales,
                            int threads = 0);
Status FakeQuantActivationsRef(const float* x, int64_t m, int64_t k, ActFormat fmt, float* out, float* row_scales);

// ---- error metric --------------------------------------------------------------------------
// ||X W - Qa(X) W'||_F^2 / ||X W||_F^2 for X[S][K], W, W'[K][N] (Qa = FakeQuantActivations with act).
// With grouping kAlongN weights this is the same call (W' is just a dense matrix).
Status LayerOutputError(const float* x, int64_t s, int32_t k, const float* w, const float* w_dequantized, int32_t n,
                        ActFormat act, double* relative_error, int threads = 0);
// The same for a layer quantized in AWQ's scaled space: ||X W - Qa(X diag(1/s)) W'||^2 / ||X W||^2,
// with W' the dequantized diag(s) W (input_scale null: as LayerOutputError).
Status LayerOutputErrorScaled(const float* x, int64_t s, int32_t k, const float* input_scale, const float* w,
                              const float* w_dequantized, int32_t n, ActFormat act, double* relative_error, int threads = 0);

// ---- AWQ -----------------------------------------------------------------------------------
// Activation-aware scaling (AWQ, Lin et al. 2024) for layers that share one input (q,k,v or gate,up).
// For alpha = i / grid_size, i = 0..grid_size-1: s_k = max(mean|x_k|^alpha, 1e-4), s /= sqrt(max s * min s)
// (AutoAWQ's normalisation); with duo_scaling the grid is searched a second time with AutoAWQ's
// s_k = max(mean|x_k|^alpha / (mean|w_k|^(1-alpha) + 1e-4), 1e-4), mean|w_k| over every output of every layer
// of |w| / its group's absmax (so 2 * grid_size candidates; alpha 0 of the first family is RTN); each W is replaced by diag(s) W and quantized; the error is the summed
// layer output error of Qa(X diag(1/s)) Q(diag(s) W) against X W over all layers. Best alpha wins.
// Then, when clip_grid > 1, a clip ratio per group (kAlongK groups; per output channel for per-channel
// quantization) is chosen from 1, 1 - step, ..., clip_min by the group's own output error
// d^T H_g d, d = W_s - Q_r(W_s), H_g the group's block of (X/s)^T (X/s) (activations not quantized
// here, as in AutoAWQ); the clipped result is kept only if it lowers the full layer error. With
// grouping kAlongN only the scale search runs (group_clip is filled with cfg.clip_ratio).
//
// With kernel_act >= 0 the alpha search, the clip search's keep-or-drop decision and the reported
// layer errors use the W4A8 kernels; the clip ratio per group is still ranked by d^T H_g d.
//
// The caller folds 1/s into whatever produces X (divide the preceding norm's weight by s, or insert
// a Mul by 1/s): the returned codes and dequantized weights are those of diag(s) W.
struct AwqConfig {
  int32_t grid_size = 20;
  int32_t clip_grid = 11;      // number of clip ratios tried, 1 = no clip search
  float clip_min = 0.5f;
  ActFormat act = ActFormat::kNone;
  bool duo_scaling = true;     // also search AutoAWQ's weight-aware family
  // Int8 activations only (act == kInt8, grouping kAlongK): score every candidate with the true W4A8
  // numerics of the CPU kernels (cpu_kernels.h: Prepack + GemmW4A8 on X/s, activations quantized
  // inside the kernel) instead of fake-quantized activations times dequantized weights.
  // -1: float simulation; 0: per (token, K-block) activation scales, as ONNX Runtime's MatMulNBits at
  // accuracy_level 4 and our kernels' default; 1: one scale per token, as the sim export.
  int32_t kernel_act = -1;
};
struct AwqLayer {
  const float* w = nullptr;   // [K][N]
  int32_t n = 0;
  QuantizedOutputs out;        // as for QuantizeWeight (kAlongK)
  float* group_clip = nullptr; // optional out: chosen clip ratio per group [N][blocks]
  double error_before = 0;     // plain RTN with cfg (alpha 0, no clip search)
  double error_after = 0;      // with the chosen scales (and clipping)
};
struct AwqResult {
  float alpha = 0;
  bool duo_scaling = false;      // the chosen alpha belongs to the duo family
  double error_before = 0;       // all layers together
  double error_after_scale = 0;  // best alpha, before the clip search
  double error_after = 0;        // final
  bool clipped = false;          // the clip search was kept
  double seconds_scale_search = 0, seconds_clip_search = 0;
};
// x: the sampled inputs [S][K]; mean_abs [K] optional (null: computed from x); scales_out [K].
Status AwqSearch(const float* x, int64_t s, int32_t k, const float* mean_abs, AwqLayer* layers, int32_t layer_count,
                 const WeightQuantConfig& cfg, const AwqConfig& awq, float* scales_out, AwqResult* result,
                 int threads = 0);

// ---- GPTQ ----------------------------------------------------------------------------------
// GPTQ (Frantar et al. 2023) on H = X^T X [K][K] (any positive scale; fp64). Dead inputs (H_kk = 0)
// get H_kk = 1 and a zero weight row. damp * mean(diag H) is added to the diagonal (retried x10 up
// to 3 times if H is still not positive definite); U = upper Cholesky factor of H^-1; columns are
// processed in blocks of block_size (rounded up to whole groups when groups are dynamic) with lazy
// batch updates. Group parameters are computed from the
// current (already error-compensated) weights when a group is entered; with act_order the inputs
// are visited by descending H_kk and the groups are static (computed from the original W up front)
// so that the result stays in the canonical layout (no g_idx). With grouping kAlongN, the groups of
// input row k are computed from that row when it is reached (outputs as for QuantizeWeight).
//
// input_scale (optional, s[K] > 0): GPTQ of diag(s) W under the Hessian of the scaled activations
// X diag(1/s), i.e. diag(1/s) H diag(1/s) (AWQ's scaling folded first, then GPTQ: "awq+gptq"); the
// outputs then quantize diag(s) W, as AWQ's do. clip_grid > 1: every group's parameters come from
// an MSE clip search over clip_grid ratios from cfg.clip_ratio down to clip_min * cfg.clip_ratio
// (quant/group_codec.h MseClipParams), on the weights as GPTQ holds them when the group is entered,
// each input row's squared error weighted by its Hessian diagonal when clip_h_weighted.
struct GptqConfig {
  double damp = 0.01;
  bool act_order = false;
  int32_t block_size = 128;
  const float* input_scale = nullptr;
  int32_t clip_grid = 1;
  float clip_min = 0.5f;
  bool clip_h_weighted = false;
  // Factor H (build U) in fp32 instead of fp64: half the K x K working memory.
  bool factor_f32 = false;
};
struct GptqResult {
  double proxy_loss = 0;       // sum over inputs of ||(w - q) / U_kk||^2 / 2 (GPTQ's reported loss)
  double damp_used = 0;        // the relative dampening that succeeded
  int32_t dead_inputs = 0;
};
Status GptqQuantize(const float* w, int32_t k, int32_t n, const double* hessian, const WeightQuantConfig& cfg,
                    const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads = 0);
// The same with an fp32 Hessian (read in place, never copied; the factorization is fp64 either way).
Status GptqQuantize(const float* w, int32_t k, int32_t n, const float* hessian, const WeightQuantConfig& cfg,
                    const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads = 0);

}  // namespace w4a8
