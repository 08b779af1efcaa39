// JS glue for the CUDA kernels (builds with CUDA only): cudaLinear (W4A8 GEMM or W4A16 GEMV on host
// arrays), cudaQuantizeActivations (per-token int8 / FP8) and cudaKroneckerAdd. Each returns a Promise
// and runs on the libuv pool. lib/native/cuda.ts validates first and checks that a device exists; the
// checks here only keep a wrong call from crashing the process.
#ifdef W4A8_WITH_CUDA
#include "napi_util.h"
#include "registry.h"
#include "w4a8/cuda_api.h"

namespace w4a8::addon {
namespace {

constexpr int64_t kMaxDim = (int64_t)1 << 30;

bool IsNull(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() <= i || info[i].IsNull() || info[i].IsUndefined();
}

// Argument i to keep alive, or `other` when it is null (N-API cannot reference a primitive).
Napi::Value KeepOr(const Napi::CallbackInfo& info, size_t i, Napi::Value other) {
  return IsNull(info, i) ? other : info[i];
}

// (kind 0 = W4A8 | 1 = W4A16, format 0 = int4 | 1 = fp4, n, k, groupSize, codes: Uint8Array,
//  scales: Float32Array, zeroPoints: Uint8Array | null, m, x: Float32Array [m][k], y: Float32Array [m][n])
Napi::Value CudaLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto kind = (cuda::LinearKind)IntArg(info, 0, "kind", 0, 1);
  QuantizedWeight w{};
  w.format = (WeightFormat)IntArg(info, 1, "format", 0, 1);
  w.n = (int32_t)IntArg(info, 2, "n", 1, kMaxDim);
  w.k = (int32_t)IntArg(info, 3, "k", 1, kMaxDim);
  w.group_size = (int32_t)IntArg(info, 4, "groupSize", kMinGroupSize, 1 << 20);
  if (w.group_size & (w.group_size - 1)) ThrowRange(env, "groupSize must be a power of two");
  size_t n_codes = 0, n_scales = 0, n_zp = 0, n_x = 0, n_y = 0;
  w.codes = TypedArg<uint8_t>(info, 5, napi_uint8_array, "codes", &n_codes);
  w.scales = TypedArg<float>(info, 6, napi_float32_array, "scales", &n_scales);
  if (!IsNull(info, 7)) w.zero_points = TypedArg<uint8_t>(info, 7, napi_uint8_array, "zeroPoints", &n_zp);
  const int32_t m = (int32_t)IntArg(info, 8, "m", 1, kind == cuda::LinearKind::kW4A16 ? cuda::kW4A16MaxTokens : kMaxDim);
  const float* x = TypedArg<float>(info, 9, napi_float32_array, "x", &n_x);
  float* y = TypedArg<float>(info, 10, napi_float32_array, "y", &n_y);
  if (n_codes < CodeBytes(w.n, w.k, w.group_size)) ThrowRange(env, "codes are shorter than the shape needs");
  if (n_scales < ScaleCount(w.n, w.k, w.group_size)) ThrowRange(env, "scales are shorter than the shape needs");
  if (w.zero_points && n_zp < ZeroPointBytes(w.n, w.k, w.group_size)) ThrowRange(env, "zeroPoints are shorter than the shape needs");
  if (n_x < (size_t)m * w.k) ThrowRange(env, "x holds fewer than m * k values");
  if (n_y < (size_t)m * w.n) ThrowRange(env, "y holds fewer than m * n values");
  return RunAsync(env, "cudaLinear", [=]() { return cuda::LinearHost(kind, w, m, x, y); },
                  {info[5], info[6], KeepOr(info, 7, info[5]), info[9], info[10]});
}

// (m, k, x: Float32Array, qInt8: Int8Array | null, scalesInt8: Float32Array | null,
//  qFp8: Uint8Array | null, scalesFp8: Float32Array | null)
Napi::Value CudaQuantizeActivations(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t m = (int32_t)IntArg(info, 0, "m", 1, kMaxDim);
  const int32_t k = (int32_t)IntArg(info, 1, "k", 1, kMaxDim);
  size_t n_x = 0, n = 0;
  const float* x = TypedArg<float>(info, 2, napi_float32_array, "x", &n_x);
  if (n_x < (size_t)m * k) ThrowRange(env, "x holds fewer than m * k values");
  int8_t* q8 = nullptr;
  float* s8 = nullptr;
  uint8_t* qf = nullptr;
  float* sf = nullptr;
  if (!IsNull(info, 3)) {
    q8 = TypedArg<int8_t>(info, 3, napi_int8_array, "qInt8", &n);
    if (n < (size_t)m * k) ThrowRange(env, "qInt8 holds fewer than m * k values");
    s8 = TypedArg<float>(info, 4, napi_float32_array, "scalesInt8", &n);
    if (n < (size_t)m) ThrowRange(env, "scalesInt8 holds fewer than m values");
  }
  if (!IsNull(info, 5)) {
    qf = TypedArg<uint8_t>(info, 5, napi_uint8_array, "qFp8", &n);
    if (n < (size_t)m * k) ThrowRange(env, "qFp8 holds fewer than m * k values");
    sf = TypedArg<float>(info, 6, napi_float32_array, "scalesFp8", &n);
    if (n < (size_t)m) ThrowRange(env, "scalesFp8 holds fewer than m values");
  }
  if (!q8 && !qf) ThrowType(env, "give qInt8 or qFp8 (or both)");
  return RunAsync(env, "cudaQuantizeActivations",
                  [=]() { return cuda::QuantizeActivationsHost(m, k, x, q8, qf, s8, sf); },
                  {info[2], KeepOr(info, 3, info[2]), KeepOr(info, 4, info[2]), KeepOr(info, 5, info[2]),
                   KeepOr(info, 6, info[2])});
}

// (terms, aRows, aCols, bRows, bCols, a: Float32Array, b: Float32Array, m, x: Float32Array, y: Float32Array)
Napi::Value CudaKroneckerAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t terms = (int32_t)IntArg(info, 0, "terms", 1, kMaxDim);
  const int32_t ar = (int32_t)IntArg(info, 1, "aRows", 1, 1 << 15), ac = (int32_t)IntArg(info, 2, "aCols", 1, 1 << 15);
  const int32_t br = (int32_t)IntArg(info, 3, "bRows", 1, 1 << 15), bc = (int32_t)IntArg(info, 4, "bCols", 1, 1 << 15);
  size_t n_a = 0, n_b = 0, n_x = 0, n_y = 0;
  const float* a = TypedArg<float>(info, 5, napi_float32_array, "a", &n_a);
  const float* b = TypedArg<float>(info, 6, napi_float32_array, "b", &n_b);
  const int32_t m = (int32_t)IntArg(info, 7, "m", 1, kMaxDim);
  const float* x = TypedArg<float>(info, 8, napi_float32_array, "x", &n_x);
  float* y = TypedArg<float>(info, 9, napi_float32_array, "y", &n_y);
  if (n_a < (size_t)terms * ar * ac) ThrowRange(env, "a holds fewer than terms * aRows * aCols values");
  if (n_b < (size_t)terms * br * bc) ThrowRange(env, "b holds fewer than terms * bRows * bCols values");
  if (n_x < (size_t)m * ac * bc) ThrowRange(env, "x holds fewer than m * aCols * bCols values");
  if (n_y < (size_t)m * ar * br) ThrowRange(env, "y holds fewer than m * aRows * bRows values");
  return RunAsync(env, "cudaKroneckerAdd",
                  [=]() { return cuda::KroneckerAdapterAddHost(terms, ar, ac, br, bc, a, b, m, x, y); },
                  {info[5], info[6], info[8], info[9]});
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaLinear", Napi::Function::New(env, CudaLinear));
  exports.Set("cudaQuantizeActivations", Napi::Function::New(env, CudaQuantizeActivations));
  exports.Set("cudaKroneckerAdd", Napi::Function::New(env, CudaKroneckerAdd));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
#endif  // W4A8_WITH_CUDA
