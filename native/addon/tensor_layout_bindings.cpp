// JS glue for tensor_ops, both on the libuv pool:
//   transposeF32(src, rows, cols, dst) -> Promise<void>
//   ropeTablesF32(seqLen, headSize, theta, cos, sin) -> Promise<void>
// The TypeScript wrapper validates; these checks only keep a bad call from crashing.
#include "napi_util.h"
#include "registry.h"
#include "w4a8/tensor_ops.h"

namespace w4a8::addon {
namespace {

Napi::Value TransposeF32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_src = 0, n_dst = 0;
  const float* src = TypedArg<float>(info, 0, napi_float32_array, "src", &n_src);
  const size_t rows = (size_t)IntArg(info, 1, "rows", 0, (int64_t)1 << 40);
  const size_t cols = (size_t)IntArg(info, 2, "cols", 0, (int64_t)1 << 40);
  float* dst = TypedArg<float>(info, 3, napi_float32_array, "dst", &n_dst);
  if (cols != 0 && rows > n_src / cols) ThrowRange(env, "src holds fewer than rows * cols values");
  if (n_src != rows * cols) ThrowRange(env, "src length is not rows * cols");
  if (n_dst != n_src) ThrowRange(env, "dst length differs from src length");
  return RunAsync(
      env, "transposeF32", [src, dst, rows, cols]() { return TransposeF32(src, dst, rows, cols); }, {info[0], info[3]});
}

Napi::Value RopeTablesF32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t seq_len = (size_t)IntArg(info, 0, "seqLen", 0, (int64_t)1 << 32);
  const size_t head_size = (size_t)IntArg(info, 1, "headSize", 2, (int64_t)1 << 20);
  if (info.Length() <= 2 || !info[2].IsNumber()) ThrowType(env, "theta must be a number");
  const float theta = info[2].As<Napi::Number>().FloatValue();
  size_t n_cos = 0, n_sin = 0;
  float* cos_out = TypedArg<float>(info, 3, napi_float32_array, "cos", &n_cos);
  float* sin_out = TypedArg<float>(info, 4, napi_float32_array, "sin", &n_sin);
  if (head_size % 2 != 0) ThrowRange(env, "headSize must be even");
  if (!(theta > 0.0f)) ThrowRange(env, "theta must be positive");
  if (n_cos != seq_len * (head_size / 2) || n_sin != n_cos) ThrowRange(env, "cos and sin must hold seqLen * headSize/2 values");
  return RunAsync(
      env, "ropeTablesF32", [=]() { return RopeTablesF32(seq_len, head_size, theta, cos_out, sin_out); }, {info[3], info[4]});
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("transposeF32", Napi::Function::New(env, TransposeF32Async));
  exports.Set("ropeTablesF32", Napi::Function::New(env, RopeTablesF32Async));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
