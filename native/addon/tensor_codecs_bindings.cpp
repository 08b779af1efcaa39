// fp16 / bf16 <-> fp32 conversions for ONNX initializers.
#include "napi_util.h"
#include "registry.h"
#include "w4a8/half.h"

namespace w4a8::addon {
namespace {

using Convert16 = void (*)(const uint16_t*, float*, size_t);
using ConvertTo16 = void (*)(const float*, uint16_t*, size_t);

template <Convert16 fn>
Napi::Value From16(const Napi::CallbackInfo& info) {
  size_t n = 0, m = 0;
  auto* src = TypedArg<uint16_t>(info, 0, napi_uint16_array, "src", &n);
  auto* dst = TypedArg<float>(info, 1, napi_float32_array, "dst", &m);
  if (n != m) ThrowRange(info.Env(), "src and dst lengths differ");
  fn(src, dst, n);
  return info.Env().Undefined();
}

template <ConvertTo16 fn>
Napi::Value To16(const Napi::CallbackInfo& info) {
  size_t n = 0, m = 0;
  auto* src = TypedArg<float>(info, 0, napi_float32_array, "src", &n);
  auto* dst = TypedArg<uint16_t>(info, 1, napi_uint16_array, "dst", &m);
  if (n != m) ThrowRange(info.Env(), "src and dst lengths differ");
  fn(src, dst, n);
  return info.Env().Undefined();
}

// Counts non-finite values: weights with NaN/Inf are refused before quantization.
Napi::Value CountNonFinite(const Napi::CallbackInfo& info) {
  size_t n = 0;
  auto* src = TypedArg<float>(info, 0, napi_float32_array, "src", &n);
  double bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = FloatBits(src[i]);
    bad += ((bits & 0x7f800000u) == 0x7f800000u) ? 1 : 0;
  }
  return Napi::Number::New(info.Env(), bad);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("float16ToFloat32", Napi::Function::New(env, From16<HalfToFloatArray>));
  exports.Set("bfloat16ToFloat32", Napi::Function::New(env, From16<Bf16ToFloatArray>));
  exports.Set("float32ToFloat16", Napi::Function::New(env, To16<FloatToHalfArray>));
  exports.Set("float32ToBfloat16", Napi::Function::New(env, To16<FloatToBf16Array>));
  exports.Set("countNonFinite", Napi::Function::New(env, CountNonFinite));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
