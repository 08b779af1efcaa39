// JS glue for the error compensation fits (compensate.h). lib/native/quant.ts validates and
// allocates; the checks here only keep a wrong call from crashing. Runs on the libuv pool.
#include <memory>
#include <string>
#include <vector>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/compensate.h"

namespace w4a8::addon {
namespace {

double Num(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

template <typename T>
T* Optional(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name, size_t* len) {
  *len = 0;
  if (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return TypedArg<T>(info, i, type, name, len);
}

// compensateError(w, wq, k, n, hessian (Float64Array|Float32Array)|null, inputScale|null, {method, rank, k1, n1, damp, maxIters, tol}, a, b,
//                 compensated|null, history|null) -> Promise<{weightedBefore, weightedAfter, iterations}>
Napi::Value CompensateErrorFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t wl, ql, hl, al, bl, cl, yl;
  const float* w = TypedArg<float>(info, 0, napi_float32_array, "w", &wl);
  const float* wq = TypedArg<float>(info, 1, napi_float32_array, "wq", &ql);
  const int32_t k = (int32_t)IntArg(info, 2, "k", 1, 1 << 30);
  const int32_t n = (int32_t)IntArg(info, 3, "n", 1, 1 << 30);
  const double* h64 = nullptr;
  const float* h32 = nullptr;
  hl = 0;
  if (info.Length() > 4 && info[4].IsTypedArray() && info[4].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array)
    h32 = TypedArg<float>(info, 4, napi_float32_array, "hessian", &hl);
  else
    h64 = Optional<double>(info, 4, napi_float64_array, "hessian", &hl);
  const bool has_h = h64 || h32;
  size_t sl;
  const float* scale = Optional<float>(info, 5, napi_float32_array, "inputScale", &sl);
  if (scale && sl != (size_t)k) ThrowRange(env, "compensateError: inputScale must hold k values");
  if (info.Length() <= 6 || !info[6].IsObject()) ThrowType(env, "compensateError: config must be an object");
  Napi::Object o = info[6].As<Napi::Object>();
  CompensateConfig c;
  const double method = Num(o, "method", -1);
  if (method != 0 && method != 1 && method != 2) ThrowRange(env, "compensateError: method must be 0, 1 or 2");
  c.method = (CompensateMethod)(int32_t)method;
  c.rank = (int32_t)Num(o, "rank", 0);
  c.k1 = (int32_t)Num(o, "k1", 0);
  c.n1 = (int32_t)Num(o, "n1", 0);
  c.damp = Num(o, "damp", 0.01);
  c.max_iters = (int32_t)Num(o, "maxIters", 30);
  c.tol = Num(o, "tol", 1e-7);
  if (CheckCompensateConfig(c, k, n) != Status::kOk) ThrowRange(env, "compensateError: config does not fit k x n");
  float* a = TypedArg<float>(info, 7, napi_float32_array, "a", &al);
  float* b = TypedArg<float>(info, 8, napi_float32_array, "b", &bl);
  float* comp = Optional<float>(info, 9, napi_float32_array, "compensated", &cl);
  double* hist = Optional<double>(info, 10, napi_float64_array, "history", &yl);
  if (wl != (size_t)k * n || ql != (size_t)k * n) ThrowRange(env, "compensateError: w and wq must hold k * n values");
  if (has_h && hl != (size_t)k * k) ThrowRange(env, "compensateError: hessian must hold k * k values");
  if (!has_h && c.method != CompensateMethod::kLorc) ThrowRange(env, "compensateError: the aware fits need a hessian");
  if (al != (size_t)CompensateFactorA(c, k, n) || bl != (size_t)CompensateFactorB(c, k, n))
    ThrowRange(env, "compensateError: a or b has the wrong length");
  if (comp && cl != (size_t)k * n) ThrowRange(env, "compensateError: compensated must hold k * n values");
  if (hist && yl != (size_t)c.max_iters + 1) ThrowRange(env, "compensateError: history must hold maxIters + 1 values");
  auto result = std::make_shared<CompensateResult>();
  auto* worker = new PromiseWorker(
      env, "compensateError", [=]() {
        if (h32) {
          std::vector<double> h(h32, h32 + (size_t)k * k);
          return CompensateError(w, wq, k, n, h.data(), scale, c, a, b, comp, result.get(), hist);
        }
        return CompensateError(w, wq, k, n, h64, scale, c, a, b, comp, result.get(), hist);
      },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("weightedBefore", result->weighted_before);
        r.Set("weightedAfter", result->weighted_after);
        r.Set("iterations", (double)result->iterations);
        return r;
      });
  // Optional arguments may be null: only objects can be kept alive by reference.
  for (size_t i : {0, 1, 4, 5, 7, 8, 9, 10})
    if (info.Length() > i && info[i].IsObject()) worker->Keep(info[i]);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("compensateError", Napi::Function::New(env, CompensateErrorFn));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
