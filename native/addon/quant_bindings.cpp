// JS glue for the weight quantizers, activation fake-quant, layer error, AWQ, GPTQ and the SVD.
// lib/native/quant.ts validates every argument and allocates the outputs; the checks here only keep
// a wrong call from crashing. Everything that scales with a layer runs on the libuv pool.
#include <memory>
#include <string>
#include <vector>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8::addon {
namespace {

bool BoolProp(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}
double NumProp(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// RunAsync, keeping only the arguments that are objects (optional arguments may be null, and
// N-API references to primitives are refused).
Napi::Promise RunKeeping(Napi::Env env, const char* what, PromiseWorker::Work work, std::initializer_list<Napi::Value> keep,
                         PromiseWorker::Done done = nullptr) {
  auto* worker = new PromiseWorker(env, what, std::move(work), std::move(done));
  for (const auto& v : keep)
    if (v.IsObject()) worker->Keep(v);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// {format: 0|1, symmetric, groupSize, grouping: 0|1, pow2Scales, clipRatio}
WeightQuantConfig ConfigArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsObject()) ThrowType(env, "quantization config must be an object");
  Napi::Object o = info[i].As<Napi::Object>();
  WeightQuantConfig c;
  c.format = (WeightFormat)(int32_t)NumProp(o, "format", 0);
  c.symmetric = BoolProp(o, "symmetric", false);
  c.group_size = (int32_t)NumProp(o, "groupSize", 128);
  c.grouping = (Grouping)(int32_t)NumProp(o, "grouping", 0);
  c.pow2_scales = BoolProp(o, "pow2Scales", false);
  c.clip_ratio = (float)NumProp(o, "clipRatio", 1.0);
  c.per_channel_block = (int32_t)NumProp(o, "perChannelBlockSize", 128);
  if (CheckWeightQuantConfig(c) != Status::kOk) ThrowRange(env, "unsupported quantization config");
  return c;
}

template <typename T>
T* OptionalTyped(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name, size_t* len) {
  *len = 0;
  if (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return TypedArg<T>(info, i, type, name, len);
}

template <typename T>
T* TypedValue(Napi::Env env, Napi::Value v, napi_typedarray_type type, const std::string& name, size_t* len) {
  if (!v.IsTypedArray()) ThrowType(env, name + " must be a typed array");
  Napi::TypedArray arr = v.As<Napi::TypedArray>();
  if (arr.TypedArrayType() != type) ThrowType(env, name + " has the wrong element type");
  *len = arr.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
}

void CheckOutputs(Napi::Env env, const WeightQuantConfig& c, int32_t k, int32_t n, size_t codes, size_t scales,
                  const uint8_t* zp, size_t zp_len, const float* deq, size_t deq_len, const std::string& who) {
  if (codes != QuantCodeBytes(c, k, n)) ThrowRange(env, who + ": codes has the wrong length");
  if (scales != QuantScaleCount(c, k, n)) ThrowRange(env, who + ": scales has the wrong length");
  if (HasZeroPoints(c) && (!zp || zp_len != QuantZeroPointBytes(c, k, n)))
    ThrowRange(env, who + ": zeroPoints has the wrong length");
  if (deq && deq_len != (size_t)k * n) ThrowRange(env, who + ": dequantized has the wrong length");
}

// quantSizes(k, n, cfg) -> {codeBytes, scaleCount, zeroPointBytes, layoutGroupSize}
Napi::Value QuantSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int32_t k = (int32_t)IntArg(info, 0, "k", 1, 1 << 30);
  const int32_t n = (int32_t)IntArg(info, 1, "n", 1, 1 << 30);
  const WeightQuantConfig c = ConfigArg(info, 2);
  Napi::Object o = Napi::Object::New(env);
  o.Set("codeBytes", (double)QuantCodeBytes(c, k, n));
  o.Set("scaleCount", (double)QuantScaleCount(c, k, n));
  o.Set("zeroPointBytes", (double)QuantZeroPointBytes(c, k, n));
  o.Set("layoutGroupSize", (double)(c.grouping == Grouping::kAlongK ? LayoutGroupSize(c, k) : (c.group_size ? c.group_size : n)));
  return o;
}

// quantizeWeight(w, k, n, cfg, groupClip|null, codes, scales, zeroPoints|null, dequantized|null) -> Promise<void>
Napi::Value QuantizeWeightFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t wl, gl, cl, sl, zl, dl;
  const float* w = TypedArg<float>(info, 0, napi_float32_array, "w", &wl);
  const int32_t k = (int32_t)IntArg(info, 1, "k", 1, 1 << 30);
  const int32_t n = (int32_t)IntArg(info, 2, "n", 1, 1 << 30);
  const WeightQuantConfig c = ConfigArg(info, 3);
  const float* clip = OptionalTyped<float>(info, 4, napi_float32_array, "groupClip", &gl);
  uint8_t* codes = TypedArg<uint8_t>(info, 5, napi_uint8_array, "codes", &cl);
  float* scales = TypedArg<float>(info, 6, napi_float32_array, "scales", &sl);
  uint8_t* zp = OptionalTyped<uint8_t>(info, 7, napi_uint8_array, "zeroPoints", &zl);
  float* deq = OptionalTyped<float>(info, 8, napi_float32_array, "dequantized", &dl);
  if (wl != (size_t)k * n) ThrowRange(env, "quantizeWeight: w must hold k * n values");
  CheckOutputs(env, c, k, n, cl, sl, zp, zl, deq, dl, "quantizeWeight");
  if (clip && (c.grouping != Grouping::kAlongK || gl != QuantScaleCount(c, k, n)))
    ThrowRange(env, "quantizeWeight: groupClip needs grouping along K and one ratio per group");
  if (clip)
    for (size_t i = 0; i < gl; ++i)
      if (!(clip[i] > 0.0f && clip[i] <= 1.0f)) ThrowRange(env, "quantizeWeight: every groupClip ratio must be in (0, 1]");
  QuantizedOutputs out{codes, scales, HasZeroPoints(c) ? zp : nullptr, deq};
  return RunKeeping(env, "quantizeWeight",
                  [=]() { return QuantizeWeight(w, k, n, c, clip, out); },
                  {info[0], info[4], info[5], info[6], info[7], info[8]});
}

// fakeQuantActivations(x, m, k, fmt, out, rowScales|null) -> Promise<void>
Napi::Value FakeQuantFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t xl, ol, sl;
  const float* x = TypedArg<float>(info, 0, napi_float32_array, "x", &xl);
  const int64_t m = IntArg(info, 1, "m", 0, (int64_t)1 << 40);
  const int64_t k = IntArg(info, 2, "k", 1, (int64_t)1 << 40);
  const ActFormat fmt = (ActFormat)IntArg(info, 3, "format", 0, 2);
  float* out = TypedArg<float>(info, 4, napi_float32_array, "out", &ol);
  float* rs = OptionalTyped<float>(info, 5, napi_float32_array, "rowScales", &sl);
  if (xl != (size_t)(m * k) || ol != xl) ThrowRange(env, "fakeQuantActivations: x and out must hold m * k values");
  if (rs && sl != (size_t)m) ThrowRange(env, "fakeQuantActivations: rowScales must hold m values");
  return RunKeeping(env, "fakeQuantActivations", [=]() { return FakeQuantActivations(x, m, k, fmt, out, rs); },
                  {info[0], info[4], info[5]});
}

// quantizeInt8Rows(src, rows, cols, q, scales) -> Promise<void>: formats.h Int8Rows (int8 low-rank factors)
Napi::Value QuantizeInt8RowsFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t sl, ql, cl;
  const float* src = TypedArg<float>(info, 0, napi_float32_array, "src", &sl);
  const int32_t rows = (int32_t)IntArg(info, 1, "rows", 1, 1 << 30);
  const int32_t cols = (int32_t)IntArg(info, 2, "cols", 1, 1 << 30);
  int8_t* q = TypedArg<int8_t>(info, 3, napi_int8_array, "q", &ql);
  float* scales = TypedArg<float>(info, 4, napi_float32_array, "scales", &cl);
  if (sl != (size_t)rows * cols || ql != sl) ThrowRange(env, "quantizeInt8Rows: src and q must hold rows * cols values");
  if (cl != (size_t)rows) ThrowRange(env, "quantizeInt8Rows: scales must hold rows values");
  return RunKeeping(env, "quantizeInt8Rows", [=]() { return cpu::QuantizeInt8Rows(src, rows, cols, q, scales); },
                    {info[0], info[3], info[4]});
}

// layerOutputError(x, s, k, w, wq, n, act, inputScale|null) -> Promise<number>
Napi::Value LayerErrorFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t xl, wl, ql;
  const float* x = TypedArg<float>(info, 0, napi_float32_array, "x", &xl);
  const int64_t s = IntArg(info, 1, "rows", 1, (int64_t)1 << 40);
  const int32_t k = (int32_t)IntArg(info, 2, "k", 1, 1 << 30);
  const float* w = TypedArg<float>(info, 3, napi_float32_array, "w", &wl);
  const float* wq = TypedArg<float>(info, 4, napi_float32_array, "wq", &ql);
  const int32_t n = (int32_t)IntArg(info, 5, "n", 1, 1 << 30);
  const ActFormat act = (ActFormat)IntArg(info, 6, "act", 0, 2);
  if (xl != (size_t)s * k) ThrowRange(env, "layerOutputError: x must hold rows * k values");
  if (wl != (size_t)k * n || ql != wl) ThrowRange(env, "layerOutputError: w and wq must hold k * n values");
  size_t il;
  const float* input_scale = OptionalTyped<float>(info, 7, napi_float32_array, "inputScale", &il);
  if (input_scale && il != (size_t)k) ThrowRange(env, "layerOutputError: inputScale must hold k values");
  auto result = std::make_shared<double>(0.0);
  return RunKeeping(
      env, "layerOutputError", [=]() { return LayerOutputErrorScaled(x, s, k, input_scale, w, wq, n, act, result.get()); },
      {info[0], info[3], info[4], info.Length() > 7 ? info[7] : env.Null()},
      [result](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *result); });
}

// awqSearch(x, s, k, meanAbs|null, layers[], cfg, awqCfg, scalesOut) -> Promise<result>
//   layers[i] = {w, n, codes, scales, zeroPoints|null, dequantized|null, groupClip|null}
Napi::Value AwqSearchFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t xl, ml, sl;
  const float* x = TypedArg<float>(info, 0, napi_float32_array, "x", &xl);
  const int64_t s = IntArg(info, 1, "rows", 1, (int64_t)1 << 40);
  const int32_t k = (int32_t)IntArg(info, 2, "k", 1, 1 << 30);
  const float* mean = OptionalTyped<float>(info, 3, napi_float32_array, "meanAbs", &ml);
  if (info.Length() <= 4 || !info[4].IsArray()) ThrowType(env, "awqSearch: layers must be an array");
  const WeightQuantConfig c = ConfigArg(info, 5);
  if (info.Length() <= 6 || !info[6].IsObject()) ThrowType(env, "awqSearch: awq config must be an object");
  Napi::Object ao = info[6].As<Napi::Object>();
  AwqConfig ac;
  ac.grid_size = (int32_t)NumProp(ao, "gridSize", 20);
  ac.clip_grid = (int32_t)NumProp(ao, "clipGrid", 11);
  ac.clip_min = (float)NumProp(ao, "clipMin", 0.5);
  ac.act = (ActFormat)(int32_t)NumProp(ao, "act", 0);
  ac.duo_scaling = BoolProp(ao, "duoScaling", true);
  ac.kernel_act = (int32_t)NumProp(ao, "kernelAct", -1);
  float* scales_out = TypedArg<float>(info, 7, napi_float32_array, "scalesOut", &sl);
  if (xl != (size_t)s * k) ThrowRange(env, "awqSearch: x must hold rows * k values");
  if (mean && ml != (size_t)k) ThrowRange(env, "awqSearch: meanAbs must hold k values");
  if (sl != (size_t)k) ThrowRange(env, "awqSearch: scalesOut must hold k values");
  Napi::Array arr = info[4].As<Napi::Array>();
  const uint32_t count = arr.Length();
  if (count == 0 || count > 64) ThrowRange(env, "awqSearch: give 1 to 64 layers");
  auto layers = std::make_shared<std::vector<AwqLayer>>(count);
  auto worker_keep = std::make_shared<std::vector<Napi::Value>>();
  for (uint32_t i = 0; i < count; ++i) {
    Napi::Value lv = arr.Get(i);
    if (!lv.IsObject()) ThrowType(env, "awqSearch: each layer must be an object");
    Napi::Object lo = lv.As<Napi::Object>();
    const std::string who = "awqSearch layer " + std::to_string(i);
    AwqLayer& L = (*layers)[i];
    size_t wl, cl, scl, zl = 0, dl = 0, gl = 0;
    L.w = TypedValue<float>(env, lo.Get("w"), napi_float32_array, who + " w", &wl);
    const double nv = NumProp(lo, "n", -1);
    if (!(nv >= 1 && nv < (double)(1 << 30)) || nv != (double)(int32_t)nv) ThrowRange(env, who + ": n out of range");
    L.n = (int32_t)nv;
    if (wl != (size_t)k * L.n) ThrowRange(env, who + ": w must hold k * n values");
    L.out.codes = TypedValue<uint8_t>(env, lo.Get("codes"), napi_uint8_array, who + " codes", &cl);
    L.out.scales = TypedValue<float>(env, lo.Get("scales"), napi_float32_array, who + " scales", &scl);
    Napi::Value zv = lo.Get("zeroPoints"), dv = lo.Get("dequantized"), gv = lo.Get("groupClip");
    if (zv.IsTypedArray()) L.out.zero_points = TypedValue<uint8_t>(env, zv, napi_uint8_array, who + " zeroPoints", &zl);
    if (!HasZeroPoints(c)) L.out.zero_points = nullptr;
    if (dv.IsTypedArray()) L.out.dequantized = TypedValue<float>(env, dv, napi_float32_array, who + " dequantized", &dl);
    if (gv.IsTypedArray()) L.group_clip = TypedValue<float>(env, gv, napi_float32_array, who + " groupClip", &gl);
    CheckOutputs(env, c, k, L.n, cl, scl, L.out.zero_points, zl, L.out.dequantized, dl, who);
    if (L.group_clip && gl != QuantScaleCount(c, k, L.n)) ThrowRange(env, who + ": groupClip must hold one value per group");
  }
  auto result = std::make_shared<AwqResult>();
  auto* worker = new PromiseWorker(
      env, "awqSearch",
      [=]() { return AwqSearch(x, s, k, mean, layers->data(), (int32_t)count, c, ac, scales_out, result.get()); },
      [=](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("alpha", (double)result->alpha);
        o.Set("duoScaling", result->duo_scaling);
        o.Set("errorBefore", result->error_before);
        o.Set("errorAfterScale", result->error_after_scale);
        o.Set("errorAfter", result->error_after);
        o.Set("clipped", result->clipped);
        o.Set("secondsScaleSearch", result->seconds_scale_search);
        o.Set("secondsClipSearch", result->seconds_clip_search);
        Napi::Array per = Napi::Array::New(e, layers->size());
        for (size_t i = 0; i < layers->size(); ++i) {
          Napi::Object lo = Napi::Object::New(e);
          lo.Set("errorBefore", (*layers)[i].error_before);
          lo.Set("errorAfter", (*layers)[i].error_after);
          per.Set((uint32_t)i, lo);
        }
        o.Set("layers", per);
        return o;
      });
  worker->Keep(info[0]);
  if (info[3].IsObject()) worker->Keep(info[3]);
  worker->Keep(info[4]);  // the array keeps every layer's typed arrays alive
  worker->Keep(info[7]);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// gptqQuantize(w, k, n, hessian (Float64Array|Float32Array), cfg, gptqCfg, codes, scales, zeroPoints|null,
//              dequantized|null, inputScale|null) -> Promise<{proxyLoss, dampUsed, deadInputs}>
//   gptqCfg = {damp, actOrder, blockSize, clipGrid, clipMin, clipHWeighted, factorF32}
Napi::Value GptqFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t wl, hl = 0, cl, sl, zl, dl;
  const float* w = TypedArg<float>(info, 0, napi_float32_array, "w", &wl);
  const int32_t k = (int32_t)IntArg(info, 1, "k", 1, 1 << 30);
  const int32_t n = (int32_t)IntArg(info, 2, "n", 1, 1 << 30);
  const double* h64 = nullptr;
  const float* h32 = nullptr;
  if (info.Length() > 3 && info[3].IsTypedArray() && info[3].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array)
    h32 = TypedArg<float>(info, 3, napi_float32_array, "hessian", &hl);
  else
    h64 = TypedArg<double>(info, 3, napi_float64_array, "hessian", &hl);
  const WeightQuantConfig c = ConfigArg(info, 4);
  if (info.Length() <= 5 || !info[5].IsObject()) ThrowType(env, "gptqQuantize: gptq config must be an object");
  Napi::Object go = info[5].As<Napi::Object>();
  GptqConfig gc;
  gc.damp = NumProp(go, "damp", 0.01);
  gc.act_order = BoolProp(go, "actOrder", false);
  gc.block_size = (int32_t)NumProp(go, "blockSize", 128);
  gc.clip_grid = (int32_t)NumProp(go, "clipGrid", 1);
  gc.clip_min = (float)NumProp(go, "clipMin", 0.5);
  gc.clip_h_weighted = BoolProp(go, "clipHWeighted", false);
  gc.factor_f32 = BoolProp(go, "factorF32", false);
  size_t il;
  gc.input_scale = OptionalTyped<float>(info, 10, napi_float32_array, "inputScale", &il);
  if (gc.input_scale && il != (size_t)k) ThrowRange(env, "gptqQuantize: inputScale must hold k values");
  if (gc.clip_grid < 1 || gc.clip_grid > 1000 || !(gc.clip_min > 0 && gc.clip_min <= 1))
    ThrowRange(env, "gptqQuantize: clipGrid must be 1..1000 and clipMin in (0, 1]");
  uint8_t* codes = TypedArg<uint8_t>(info, 6, napi_uint8_array, "codes", &cl);
  float* scales = TypedArg<float>(info, 7, napi_float32_array, "scales", &sl);
  uint8_t* zp = OptionalTyped<uint8_t>(info, 8, napi_uint8_array, "zeroPoints", &zl);
  float* deq = OptionalTyped<float>(info, 9, napi_float32_array, "dequantized", &dl);
  if (wl != (size_t)k * n) ThrowRange(env, "gptqQuantize: w must hold k * n values");
  if (hl != (size_t)k * k) ThrowRange(env, "gptqQuantize: hessian must hold k * k values");
  if (gc.block_size < 1 || !(gc.damp >= 0)) ThrowRange(env, "gptqQuantize: bad blockSize or damp");
  CheckOutputs(env, c, k, n, cl, sl, zp, zl, deq, dl, "gptqQuantize");
  QuantizedOutputs out{codes, scales, HasZeroPoints(c) ? zp : nullptr, deq};
  auto result = std::make_shared<GptqResult>();
  return RunKeeping(
      env, "gptqQuantize",
      [=]() {
        if (h64) return GptqQuantize(w, k, n, h64, c, gc, out, result.get());
        return GptqQuantize(w, k, n, h32, c, gc, out, result.get());
      },
      {info[0], info[3], info[6], info[7], info[8], info[9], info.Length() > 10 ? info[10] : env.Null()},
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("proxyLoss", result->proxy_loss);
        o.Set("dampUsed", result->damp_used);
        o.Set("deadInputs", (double)result->dead_inputs);
        return o;
      });
}

// truncatedSvd(a: Float64Array, m, n, rank, u, s, vt, powerIters, oversample, seed) -> Promise<void>
Napi::Value TruncatedSvdFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t al, ul, sl, vl;
  const double* a = TypedArg<double>(info, 0, napi_float64_array, "a", &al);
  const int64_t m = IntArg(info, 1, "m", 1, 1 << 30), n = IntArg(info, 2, "n", 1, 1 << 30);
  const int64_t rank = IntArg(info, 3, "rank", 1, std::min(m, n));
  double* u = TypedArg<double>(info, 4, napi_float64_array, "u", &ul);
  double* s = TypedArg<double>(info, 5, napi_float64_array, "s", &sl);
  double* vt = TypedArg<double>(info, 6, napi_float64_array, "vt", &vl);
  const int power = (int)IntArg(info, 7, "powerIters", 0, 100);
  const int64_t over = IntArg(info, 8, "oversample", 0, 1 << 20);
  const uint64_t seed = (uint64_t)IntArg(info, 9, "seed", 0, (int64_t)1 << 53);
  if (al != (size_t)(m * n) || ul != (size_t)(m * rank) || sl != (size_t)rank || vl != (size_t)(rank * n))
    ThrowRange(env, "truncatedSvd: array lengths do not match m, n, rank");
  return RunKeeping(env, "truncatedSvd", [=]() { return TruncatedSvd(a, m, n, rank, u, s, vt, power, over, seed); },
                  {info[0], info[4], info[5], info[6]});
}

Napi::Value GetGemmIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), GemmIsa()); }

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("quantSizes", Napi::Function::New(env, QuantSizes));
  exports.Set("quantizeWeight", Napi::Function::New(env, QuantizeWeightFn));
  exports.Set("fakeQuantActivations", Napi::Function::New(env, FakeQuantFn));
  exports.Set("quantizeInt8Rows", Napi::Function::New(env, QuantizeInt8RowsFn));
  exports.Set("layerOutputError", Napi::Function::New(env, LayerErrorFn));
  exports.Set("awqSearch", Napi::Function::New(env, AwqSearchFn));
  exports.Set("gptqQuantize", Napi::Function::New(env, GptqFn));
  exports.Set("truncatedSvd", Napi::Function::New(env, TruncatedSvdFn));
  exports.Set("gemmIsa", Napi::Function::New(env, GetGemmIsa));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
