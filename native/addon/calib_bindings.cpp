// JS glue for the calibration statistics accumulator: a CalibStats class whose add() and
// readHessian() run on the libuv pool. The native object is shared with in-flight workers, so
// dispose() during an add() is safe (the worker finishes on its own reference).
#include <memory>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/calib_stats.h"

namespace w4a8::addon {
namespace {

class CalibStatsWrap : public Napi::ObjectWrap<CalibStatsWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "CalibStats",
                                     {InstanceMethod("add", &CalibStatsWrap::Add),
                                      InstanceMethod("rows", &CalibStatsWrap::Rows),
                                      InstanceMethod("sampleCount", &CalibStatsWrap::SampleCount),
                                      InstanceMethod("bytes", &CalibStatsWrap::Bytes),
                                      InstanceMethod("readMeanAbs", &CalibStatsWrap::ReadMeanAbs),
                                      InstanceMethod("readMaxAbs", &CalibStatsWrap::ReadMaxAbs),
                                      InstanceMethod("readSample", &CalibStatsWrap::ReadSample),
                                      InstanceMethod("readHessian", &CalibStatsWrap::ReadHessian),
                                      InstanceMethod("dispose", &CalibStatsWrap::Dispose)});
    exports.Set("CalibStats", cls);
  }

  // new CalibStats(k, sampleRows, seed, hessianMode 0 none | 1 fp32 | 2 fp64)
  explicit CalibStatsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CalibStatsWrap>(info) {
    Napi::Env env = info.Env();
    CalibStatsConfig cfg;
    cfg.k = (int32_t)IntArg(info, 0, "k", 1, 1 << 20);
    cfg.sample_rows = (int32_t)IntArg(info, 1, "sampleRows", 0, 1 << 24);
    cfg.seed = (uint64_t)IntArg(info, 2, "seed", 0, (int64_t)1 << 53);
    cfg.hessian = (HessianMode)IntArg(info, 3, "hessian mode", 0, 2);
    std::unique_ptr<CalibStats> s;
    ThrowIfError(env, CalibStats::Create(cfg, &s), "CalibStats");
    stats_ = std::shared_ptr<CalibStats>(std::move(s));
    accounted_ = (int64_t)stats_->bytes();
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
  }

  ~CalibStatsWrap() override = default;

  void Finalize(Napi::Env env) override { Release(env); }

 private:
  std::shared_ptr<CalibStats> Live(Napi::Env env) {
    if (!stats_) throw Napi::Error::New(env, "CalibStats: used after dispose()");
    return stats_;
  }

  void Release(Napi::Env env) {
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
    stats_.reset();
  }

  // add(rows: Float32Array | Uint16Array (fp16 bits), count) -> Promise<void>
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto s = Live(env);
    const int64_t count = IntArg(info, 1, "count", 0, (int64_t)1 << 40);
    const size_t need = (size_t)count * s->config().k;
    if (info.Length() < 1 || !info[0].IsTypedArray()) ThrowType(env, "rows must be a Float32Array or Uint16Array");
    size_t len = 0;
    if (info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
      const uint16_t* x = TypedArg<uint16_t>(info, 0, napi_uint16_array, "rows", &len);
      if (len < need) ThrowRange(env, "CalibStats.add: rows hold fewer than count * k values");
      return RunAsync(env, "CalibStats.add", [s, x, count]() { return s->AddRowsHalf(x, count); }, {info[0], Value()});
    }
    const float* x = TypedArg<float>(info, 0, napi_float32_array, "rows", &len);
    if (len < need) ThrowRange(env, "CalibStats.add: rows hold fewer than count * k values");
    return RunAsync(env, "CalibStats.add", [s, x, count]() { return s->AddRows(x, count); }, {info[0], Value()});
  }

  Napi::Value Rows(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)Live(info.Env())->rows()); }
  Napi::Value SampleCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)Live(info.Env())->sample_count());
  }
  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)Live(info.Env())->bytes()); }

  Napi::Value ReadMeanAbs(const Napi::CallbackInfo& info) {
    auto s = Live(info.Env());
    size_t len = 0;
    float* out = TypedArg<float>(info, 0, napi_float32_array, "out", &len);
    if (len != (size_t)s->config().k) ThrowRange(info.Env(), "readMeanAbs: out must hold k values");
    s->MeanAbs(out);
    return info.Env().Undefined();
  }
  Napi::Value ReadMaxAbs(const Napi::CallbackInfo& info) {
    auto s = Live(info.Env());
    size_t len = 0;
    float* out = TypedArg<float>(info, 0, napi_float32_array, "out", &len);
    if (len != (size_t)s->config().k) ThrowRange(info.Env(), "readMaxAbs: out must hold k values");
    s->MaxAbs(out);
    return info.Env().Undefined();
  }
  Napi::Value ReadSample(const Napi::CallbackInfo& info) {
    auto s = Live(info.Env());
    size_t len = 0;
    float* out = TypedArg<float>(info, 0, napi_float32_array, "out", &len);
    if (len != (size_t)s->sample_count() * s->config().k) ThrowRange(info.Env(), "readSample: out must hold sampleCount * k values");
    s->Sample(out);
    return info.Env().Undefined();
  }
  // readHessian(out: Float64Array | Float32Array) -> Promise<void> (the full symmetric K x K)
  Napi::Value ReadHessian(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto s = Live(env);
    const size_t need = (size_t)s->config().k * s->config().k;
    size_t len = 0;
    if (info.Length() >= 1 && info[0].IsTypedArray() &&
        info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
      float* out = TypedArg<float>(info, 0, napi_float32_array, "out", &len);
      if (len != need) ThrowRange(env, "readHessian: out must hold k * k values");
      return RunAsync(env, "CalibStats.readHessian", [s, out]() { return s->HessianF32(out); }, {info[0], Value()});
    }
    double* out = TypedArg<double>(info, 0, napi_float64_array, "out", &len);
    if (len != need) ThrowRange(env, "readHessian: out must hold k * k values");
    return RunAsync(env, "CalibStats.readHessian", [s, out]() { return s->HessianF64(out); }, {info[0], Value()});
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release(info.Env());
    return info.Env().Undefined();
  }

  std::shared_ptr<CalibStats> stats_;
  int64_t accounted_ = 0;
};

void Init(Napi::Env env, Napi::Object exports) { CalibStatsWrap::Init(env, exports); }

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
