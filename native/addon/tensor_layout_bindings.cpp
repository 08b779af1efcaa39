// JS glue for tensor_ops, all on the libuv pool:
//   transposeF32(src, rows, cols, dst) -> Promise<void>
//   ropeTablesF32(seqLen, headSize, theta, cos, sin) -> Promise<void>
//   transposeNibbles(packed, rows, packedCols, validCols, flipSign, out) -> Promise<void>
//   divideF32(a, b, out) -> Promise<void>;  reciprocalF32(a, out) -> Promise<void>
//   matrixProductF32(left, right, rows, rank, cols, alpha, transposeOut, out) -> Promise<void>
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

Napi::Value TransposeNibblesAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_in = 0, n_out = 0;
  const uint8_t* packed = TypedArg<uint8_t>(info, 0, napi_uint8_array, "packed", &n_in);
  const size_t rows = (size_t)IntArg(info, 1, "rows", 0, (int64_t)1 << 31);
  const size_t packed_cols = (size_t)IntArg(info, 2, "packedCols", 0, (int64_t)1 << 31);
  const size_t valid_cols = (size_t)IntArg(info, 3, "validCols", 0, (int64_t)1 << 32);
  if (info.Length() <= 4 || !info[4].IsBoolean()) ThrowType(env, "flipSign must be a boolean");
  const bool flip = info[4].As<Napi::Boolean>().Value();
  uint8_t* out = TypedArg<uint8_t>(info, 5, napi_uint8_array, "out", &n_out);
  if (n_in != rows * packed_cols) ThrowRange(env, "packed length is not rows * packedCols");
  if (valid_cols > 2 * packed_cols) ThrowRange(env, "validCols exceeds 2 * packedCols");
  if (n_out != TransposedNibbleBytes(rows, valid_cols)) ThrowRange(env, "out length is not ceil(rows * validCols / 2)");
  return RunAsync(
      env, "transposeNibbles", [=]() { return TransposeNibbles(packed, rows, packed_cols, valid_cols, flip, out); },
      {info[0], info[5]});
}

Napi::Value DivideF32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_a = 0, n_b = 0, n_out = 0;
  const float* a = TypedArg<float>(info, 0, napi_float32_array, "a", &n_a);
  const float* b = TypedArg<float>(info, 1, napi_float32_array, "b", &n_b);
  float* out = TypedArg<float>(info, 2, napi_float32_array, "out", &n_out);
  if (n_b != n_a || n_out != n_a) ThrowRange(env, "a, b and out lengths differ");
  return RunAsync(env, "divideF32", [=]() { return DivideF32(a, b, out, n_a); }, {info[0], info[1], info[2]});
}

Napi::Value ReciprocalF32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_a = 0, n_out = 0;
  const float* a = TypedArg<float>(info, 0, napi_float32_array, "a", &n_a);
  float* out = TypedArg<float>(info, 1, napi_float32_array, "out", &n_out);
  if (n_out != n_a) ThrowRange(env, "a and out lengths differ");
  return RunAsync(env, "reciprocalF32", [=]() { return ReciprocalF32(a, out, n_a); }, {info[0], info[1]});
}

Napi::Value MatrixProductF32Async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n_l = 0, n_r = 0, n_out = 0;
  const float* left = TypedArg<float>(info, 0, napi_float32_array, "left", &n_l);
  const float* right = TypedArg<float>(info, 1, napi_float32_array, "right", &n_r);
  const size_t rows = (size_t)IntArg(info, 2, "rows", 1, (int64_t)1 << 30);
  const size_t rank = (size_t)IntArg(info, 3, "rank", 1, (int64_t)1 << 30);
  const size_t cols = (size_t)IntArg(info, 4, "cols", 1, (int64_t)1 << 30);
  if (info.Length() <= 5 || !info[5].IsNumber()) ThrowType(env, "alpha must be a number");
  const float alpha = info[5].As<Napi::Number>().FloatValue();
  if (info.Length() <= 6 || !info[6].IsBoolean()) ThrowType(env, "transposeOut must be a boolean");
  const bool transpose_out = info[6].As<Napi::Boolean>().Value();
  float* out = TypedArg<float>(info, 7, napi_float32_array, "out", &n_out);
  if (rank > n_l / rows || n_l != rows * rank) ThrowRange(env, "left length is not rows * rank");
  if (cols > n_r / rank || n_r != rank * cols) ThrowRange(env, "right length is not rank * cols");
  if (n_out != rows * cols) ThrowRange(env, "out length is not rows * cols");
  return RunAsync(
      env, "matrixProductF32", [=]() { return MatrixProductF32(left, right, rows, rank, cols, alpha, transpose_out, out); },
      {info[0], info[1], info[7]});
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("transposeF32", Napi::Function::New(env, TransposeF32Async));
  exports.Set("ropeTablesF32", Napi::Function::New(env, RopeTablesF32Async));
  exports.Set("transposeNibbles", Napi::Function::New(env, TransposeNibblesAsync));
  exports.Set("divideF32", Napi::Function::New(env, DivideF32Async));
  exports.Set("reciprocalF32", Napi::Function::New(env, ReciprocalF32Async));
  exports.Set("matrixProductF32", Napi::Function::New(env, MatrixProductF32Async));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
