// Host-callable entry points of the CUDA kernels. Declared for every build; without CUDA
// they are not linked, so callers guard them with W4A8_WITH_CUDA.
//
// Pointers named d_* are device memory; `stream` is a cudaStream_t passed as void* (0 = the default
// stream) so that this header needs no CUDA include. Launchers are asynchronous on the stream and
// return kInvalidArgument for bad shapes or null pointers, kCudaError when a launch fails (the CUDA
// error is cleared and its text kept for LastErrorText()); they never print or throw.
#pragma once
#include <cstddef>
#include <cstdint>

#include "w4a8/formats.h"
#include "w4a8/status.h"

namespace w4a8::cuda {

// Number of usable CUDA devices (0 when there is no driver or no GPU): never fails.
int DeviceCount();
// Name and compute capability of device 0; false when there is none.
bool DeviceDescription(char* name, int name_len, int* major, int* minor);
// Text of the last CUDA error a launcher in this thread saw ("" if none).
const char* LastErrorText();

enum class DType : int32_t { kFloat32 = 0, kBfloat16 = 1, kFloat16 = 2 };

// ---- weights ---------------------------------------------------------------------------------
// A weight in the CUDA "Mma8x32" layout (formats.h) resident on the device; owns its memory.
struct DeviceWeight {
  CudaPackedView view{};  // pointers are device pointers
  void* allocation = nullptr;
};
// Packs w on the host (PackWeightForCuda) and uploads it. w must be valid (cpu::ValidateQuantizedWeight).
Status UploadWeight(const QuantizedWeight& w, DeviceWeight* out);
void FreeWeight(DeviceWeight* w);

// ---- activation quantization (per token) --------------------------------------------------------
// int8: scale = amax / 127, q = nearbyint(clamp(x * 127 / amax, -127, 127)) (cpu_kernels.h numerics).
// d_q is [m][ldq] with ldq >= k a multiple of 64 (the GEMM reads whole 64-byte tiles); columns k..ldq-1
// are written with 0. d_x is [m][k] row-major fp32, bf16 or fp16.
Status QuantizeActivationsInt8(const void* d_x, DType x_type, int32_t m, int32_t k, int8_t* d_q, int32_t ldq,
                               float* d_scales, void* stream);
// FP8 E4M3: scale = amax / 448, q = e4m3_rne_satfinite(x * 448 / amax). d_q is [m][k].
Status QuantizeActivationsFp8(const void* d_x, DType x_type, int32_t m, int32_t k, uint8_t* d_q, float* d_scales,
                              void* stream);
// Row stride the W4A8 GEMM wants for quantized activations of k columns.
inline int32_t Int8ActivationStride(int32_t k) { return (k + kCudaTileK - 1) / kCudaTileK * kCudaTileK; }

// ---- W4A8 GEMM: y[m][n] = x_scale[m] * sum_g w_scale[n][g] * sum_{k in g} x_q[m][k] * w_int[n][k] ---------
// mma.sync m16n8k32 s8 tensor cores, int32 per K-group, fp32 across groups. y is [m][n] fp32, bf16 or fp16.
// Split-K (decode-sized m) needs a workspace of GemmW4A8WorkspaceBytes; with less (or null) it runs unsplit.
size_t GemmW4A8WorkspaceBytes(int32_t m, const DeviceWeight& w);
Status GemmW4A8(const int8_t* d_xq, int32_t ldq, const float* d_x_scales, int32_t m, const DeviceWeight& w,
                void* d_y, DType y_type, void* d_workspace, size_t workspace_bytes, void* stream);

// ---- W4A16 GEMV/GEMM for decode (m <= 8): fp32 accumulation of bf16/fp16 x times dequantized w ----
constexpr int32_t kW4A16MaxTokens = 8;
// Workspace for split-K partial sums (may be 0: then no split is used).
size_t GemmW4A16WorkspaceBytes(int32_t m, const DeviceWeight& w);
Status GemmW4A16(const void* d_x, DType x_type, int32_t m, const DeviceWeight& w, void* d_y, DType y_type,
                 void* d_workspace, size_t workspace_bytes, void* stream);

// ---- Kronecker adapter: y[t] += sum_i (A_i kron B_i) x[t] ------------------------------------------
// Convention of cpu_adapters.h: n = a_rows * b_rows, k = a_cols * b_cols,
//   y[t][p * b_rows + q] += sum_i sum_{r,s} A_i[p][r] * B_i[q][s] * x[t][r * b_cols + s].
struct DeviceKronTerms {
  int32_t terms, a_rows, a_cols, b_rows, b_cols;
  const float* d_a;  // [terms][a_rows][a_cols]
  const float* d_b;  // [terms][b_rows][b_cols]
};
// x fp32 [m][k]; y fp32 [m][n] updated in place. The intermediates X B_i^T of all terms live in shared
// memory: terms * a_cols * b_rows <= kKronMaxInner (kUnsupported otherwise).
constexpr int32_t kKronMaxInner = 12288;
Status KroneckerAdapterAdd(const DeviceKronTerms& kt, int32_t m, const float* d_x, float* d_y, void* stream);

// ---- host-memory conveniences (the addon): copy in, run, copy back, synchronize --------------------
enum class LinearKind : int32_t { kW4A8 = 0, kW4A16 = 1 };
// y [m][n] fp32 = x [m][k] fp32 times w, through the chosen kernel (kW4A16 needs m <= 8).
Status LinearHost(LinearKind kind, const QuantizedWeight& w, int32_t m, const float* x, float* y);
// Per-token quantization of x [m][k] fp32: int8 (q_int8 [m][k]) or e4m3 bytes (q_fp8 [m][k]); one may be null.
Status QuantizeActivationsHost(int32_t m, int32_t k, const float* x, int8_t* q_int8, uint8_t* q_fp8,
                               float* scales_int8, float* scales_fp8);
Status KroneckerAdapterAddHost(int32_t terms, int32_t a_rows, int32_t a_cols, int32_t b_rows, int32_t b_cols,
                               const float* a, const float* b, int32_t m, const float* x, float* y);

}  // namespace w4a8::cuda
