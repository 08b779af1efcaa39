// JS glue for the CPU kernels (cpu_kernels.h, cpu_adapters.h): ISA queries, the thread count, a
// CpuPackedWeight class (prepacked W4A8 weight plus its canonical arrays for W4A16 and the
// references), and the GEMM / adapter calls. lib/native/kernels.ts validates every argument; the
// checks here only keep a wrong raw call from reading or writing out of bounds.
//
// Kernel calls take a trailing `sync` flag: false (default) -> Promise on the libuv pool, the typed
// arrays kept alive until it settles; true -> runs inline (tiny calls, benchmarks).
#include <cmath>
#include <cstring>
#include <random>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"

namespace w4a8::addon {
namespace {

using cpu::Isa;

constexpr int64_t kMaxDim = int64_t{1} << 24;    // n, k
constexpr int64_t kMaxTokens = int64_t{1} << 24;  // m

// Canonical arrays (owned copies) and the packed weight built from them. Shared with in-flight
// workers, so dispose() during a call is safe.
struct WeightHandle {
  std::vector<uint8_t> codes, zero_points;
  std::vector<float> scales;
  QuantizedWeight canonical{};
  std::unique_ptr<cpu::PackedWeight> packed;
  size_t bytes = 0;
};

// Optional typed array: undefined/null -> nullptr.
template <typename T>
T* OptionalTyped(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name, size_t* len) {
  *len = 0;
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  return TypedArg<T>(info, i, type, name, len);
}

// Byte range of a typed-array argument, for alias checks.
struct Range {
  const uint8_t* begin = nullptr;
  size_t bytes = 0;
};
Range RangeOf(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray()) return {};
  Napi::TypedArray a = info[i].As<Napi::TypedArray>();
  return {static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), a.ByteLength()};
}
bool Overlap(Range a, Range b) {
  return a.begin && b.begin && a.bytes && b.bytes && a.begin < b.begin + b.bytes && b.begin < a.begin + a.bytes;
}
void RequireNoAlias(const Napi::CallbackInfo& info, size_t out, std::initializer_list<size_t> ins, const char* what) {
  for (size_t i : ins)
    if (Overlap(RangeOf(info, out), RangeOf(info, i)))
      ThrowRange(info.Env(), std::string(what) + ": the output array overlaps an input; pass a separate output array");
}

// ISA argument: undefined/null -> `fallback`; otherwise a name this CPU can run.
Isa IsaArg(const Napi::CallbackInfo& info, size_t i, Isa fallback) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return fallback;
  if (!info[i].IsString()) ThrowType(env, "isa must be a string");
  const std::string name = info[i].As<Napi::String>().Utf8Value();
  Isa isa;
  if (!cpu::ParseIsa(name.c_str(), &isa)) ThrowRange(env, "unknown isa '" + name + "'");
  if (!cpu::IsaAvailable(isa))
    ThrowRange(env, "isa '" + name + "' is not available here: " + cpu::IsaUnavailableReason(isa));
  return isa;
}

bool SyncArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return false;
  if (!info[i].IsBoolean()) ThrowType(info.Env(), "sync must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// Runs `work` inline (sync) or on the pool; `keep` are the argument indices whose values the work touches.
Napi::Value Dispatch(const Napi::CallbackInfo& info, bool sync, const char* what, PromiseWorker::Work work,
                     std::initializer_list<size_t> keep, Napi::Value owner) {
  Napi::Env env = info.Env();
  if (sync) {
    ThrowIfError(env, Guarded(work), what);
    return env.Undefined();
  }
  auto* worker = new PromiseWorker(env, what, std::move(work), nullptr);
  for (size_t i : keep)
    if (i < info.Length() && info[i].IsObject()) worker->Keep(info[i]);  // references need objects
  if (!owner.IsEmpty()) worker->Keep(owner);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

class PackedWeightWrap : public Napi::ObjectWrap<PackedWeightWrap> {
 public:
  // The class per Node environment (main thread and each worker thread load the addon separately;
  // one environment's constructor must never be used in another).
  static Napi::FunctionReference* Constructor(Napi::Env env) {
    std::lock_guard<std::mutex> lock(ConstructorsMutex());
    auto it = Constructors().find((napi_env)env);
    return it == Constructors().end() ? nullptr : it->second.get();
  }

  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "CpuPackedWeight",
                                     {InstanceAccessor("n", &PackedWeightWrap::N, nullptr),
                                      InstanceAccessor("k", &PackedWeightWrap::K, nullptr),
                                      InstanceAccessor("groupSize", &PackedWeightWrap::GroupSize, nullptr),
                                      InstanceAccessor("format", &PackedWeightWrap::Format, nullptr),
                                      InstanceAccessor("isa", &PackedWeightWrap::IsaName, nullptr),
                                      InstanceAccessor("bytes", &PackedWeightWrap::Bytes, nullptr),
                                      InstanceAccessor("disposed", &PackedWeightWrap::Disposed, nullptr),
                                      InstanceMethod("dispose", &PackedWeightWrap::Dispose)});
    {
      std::lock_guard<std::mutex> lock(ConstructorsMutex());
      Constructors()[(napi_env)env] = std::make_unique<Napi::FunctionReference>(Napi::Persistent(cls));
    }
    env.AddCleanupHook([e = (napi_env)env]() {
      std::lock_guard<std::mutex> lock(ConstructorsMutex());
      auto it = Constructors().find(e);
      if (it != Constructors().end()) {
        it->second->SuppressDestruct();  // the environment is going away with its references
        Constructors().erase(it);
      }
    });
    exports.Set("CpuPackedWeight", cls);
  }

  // Only the addon constructs these (cpuPrepackWeight): the argument is an External holding the handle.
  explicit PackedWeightWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PackedWeightWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsExternal())
      ThrowType(env, "CpuPackedWeight cannot be constructed directly; use cpuPrepackWeight()");
    auto* boxed = info[0].As<Napi::External<std::shared_ptr<WeightHandle>>>().Data();
    if (!boxed || !*boxed) ThrowType(env, "CpuPackedWeight: invalid handle");
    handle_ = *boxed;
    accounted_ = (int64_t)handle_->bytes;
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
  }

  void Finalize(Napi::Env env) override { Release(env); }

  // The live handle behind a JS value, or a TypeError naming the argument.
  static std::shared_ptr<WeightHandle> From(const Napi::CallbackInfo& info, size_t i) {
    Napi::Env env = info.Env();
    Napi::FunctionReference* ctor = Constructor(env);
    if (!ctor || info.Length() <= i || !info[i].IsObject() || !info[i].As<Napi::Object>().InstanceOf(ctor->Value()))
      ThrowType(env, "weight must be a CpuPackedWeight from cpuPrepackWeight()");
    PackedWeightWrap* w = Unwrap(info[i].As<Napi::Object>());
    if (!w || !w->handle_) throw Napi::Error::New(env, "CpuPackedWeight: used after dispose()");
    return w->handle_;
  }
  // Same, for calls that read the canonical arrays.
  static std::shared_ptr<WeightHandle> FromCanonical(const Napi::CallbackInfo& info, size_t i, const char* what) {
    auto h = From(info, i);
    if (!h->canonical.codes)
      ThrowRange(info.Env(), std::string(what) + " needs the canonical weights: prepack with keepCanonical: true");
    return h;
  }

 private:
  Napi::Value N(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Live(info)->canonical.n); }
  Napi::Value K(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Live(info)->canonical.k); }
  Napi::Value GroupSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), Live(info)->canonical.group_size);
  }
  Napi::Value Format(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), Live(info)->canonical.format == WeightFormat::kFp4E2M1 ? "fp4" : "int4");
  }
  Napi::Value IsaName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), cpu::IsaName(Live(info)->packed->isa()));
  }
  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)Live(info)->bytes); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !handle_); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release(info.Env());
    return info.Env().Undefined();
  }
  std::shared_ptr<WeightHandle> Live(const Napi::CallbackInfo& info) {
    if (!handle_) throw Napi::Error::New(info.Env(), "CpuPackedWeight: used after dispose()");
    return handle_;
  }
  void Release(Napi::Env env) {
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
    accounted_ = 0;
    handle_.reset();
  }

  static std::mutex& ConstructorsMutex() {
    static std::mutex mu;
    return mu;
  }
  static std::unordered_map<napi_env, std::unique_ptr<Napi::FunctionReference>>& Constructors() {
    static auto* map = new std::unordered_map<napi_env, std::unique_ptr<Napi::FunctionReference>>();
    return *map;  // leaked on purpose: no static destruction order issues at exit
  }

  std::shared_ptr<WeightHandle> handle_;
  int64_t accounted_ = 0;
};

Napi::Object WrapHandle(Napi::Env env, std::shared_ptr<WeightHandle> h) {
  auto box = std::make_unique<std::shared_ptr<WeightHandle>>(std::move(h));
  Napi::External<std::shared_ptr<WeightHandle>> ext = Napi::External<std::shared_ptr<WeightHandle>>::New(env, box.get());
  Napi::FunctionReference* ctor = PackedWeightWrap::Constructor(env);
  if (!ctor) throw Napi::Error::New(env, "CpuPackedWeight: the addon is not initialized in this environment");
  Napi::Object obj = ctor->New({ext});
  return obj;  // `box` dies here: the wrap holds its own shared_ptr copy
}

// cpuPrepackWeight(format 0 int4 | 1 fp4, n, k, groupSize, codes: Uint8Array, scales: Float32Array,
//                  zeroPoints: Uint8Array | null, isa: string | null, sync?: boolean, keepCanonical?: boolean)
//   -> Promise<CpuPackedWeight> (or the object when sync). keepCanonical (default true) keeps a copy of
//   the canonical arrays for W4A16, the references and dequantization; false halves the memory.
Napi::Value PrepackWeight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto format = (WeightFormat)IntArg(info, 0, "format", 0, 1);
  const int32_t n = (int32_t)IntArg(info, 1, "n", 1, kMaxDim);
  const int32_t k = (int32_t)IntArg(info, 2, "k", 1, kMaxDim);
  const int32_t gs = (int32_t)IntArg(info, 3, "groupSize", kMinGroupSize, kMaxGroupSize);
  if (gs & (gs - 1)) ThrowRange(env, "groupSize must be a power of two in 16..256");
  size_t codes_len = 0, scales_len = 0, zp_len = 0;
  const uint8_t* codes = TypedArg<uint8_t>(info, 4, napi_uint8_array, "codes", &codes_len);
  const float* scales = TypedArg<float>(info, 5, napi_float32_array, "scales", &scales_len);
  const uint8_t* zps = OptionalTyped<uint8_t>(info, 6, napi_uint8_array, "zeroPoints", &zp_len);
  if (codes_len != CodeBytes(n, k, gs)) ThrowRange(env, "codes length does not match n, k and groupSize");
  if (scales_len != ScaleCount(n, k, gs)) ThrowRange(env, "scales length does not match n, k and groupSize");
  if (zps && format == WeightFormat::kFp4E2M1) ThrowRange(env, "fp4 weights have no zero points");
  if (zps && zp_len != ZeroPointBytes(n, k, gs)) ThrowRange(env, "zeroPoints length does not match n, k and groupSize");
  const Isa isa = IsaArg(info, 7, cpu::DefaultIsa());
  const bool sync = SyncArg(info, 8);
  bool keep_canonical = true;
  if (info.Length() > 9 && !info[9].IsUndefined()) {
    if (!info[9].IsBoolean()) ThrowType(env, "keepCanonical must be a boolean");
    keep_canonical = info[9].As<Napi::Boolean>().Value();
  }

  // Copies are made here, on the main thread, so the caller may reuse its arrays at once.
  auto h = std::make_shared<WeightHandle>();
  h->codes.assign(codes, codes + codes_len);
  h->scales.assign(scales, scales + scales_len);
  if (zps) h->zero_points.assign(zps, zps + zp_len);
  h->canonical = QuantizedWeight{format, n, k, gs, h->codes.data(), h->scales.data(), zps ? h->zero_points.data() : nullptr};
  auto work = [h, isa, keep_canonical]() {
    Status s = cpu::Prepack(h->canonical, isa, &h->packed);
    if (s == Status::kOk && !keep_canonical) {
      h->codes = {};
      h->scales = {};
      h->zero_points = {};
      h->canonical.codes = nullptr;
      h->canonical.scales = nullptr;
      h->canonical.zero_points = nullptr;
    }
    if (s == Status::kOk) {
      const CpuPackedView& v = h->packed->view();
      const size_t packed_bytes = (size_t)v.n_panels * (v.k_padded / kCpuChunkK) * kCpuChunkBytes +
                                  (size_t)v.n_panels * v.blocks_per_row * kCpuPanelN * (sizeof(float) + 1);
      h->bytes = packed_bytes + h->codes.size() + h->scales.size() * sizeof(float) + h->zero_points.size();
    }
    return s;
  };
  if (sync) {
    ThrowIfError(env, Guarded(work), "cpuPrepackWeight");
    return WrapHandle(env, h);
  }
  return RunAsync(env, "cpuPrepackWeight", work, {}, [h](Napi::Env e) -> Napi::Value { return WrapHandle(e, h); });
}

// Shared checks of x [m][k], y [m][n], bias [n] for the GEMM calls; argument positions are fixed:
// (weight, x, m, y, bias, ...).
struct GemmIo {
  cpu::GemmArgs args;
};
GemmIo GemmIoArgs(const Napi::CallbackInfo& info, const WeightHandle& h, const char* what) {
  Napi::Env env = info.Env();
  GemmIo io;
  const int32_t m = (int32_t)IntArg(info, 2, "m", 1, kMaxTokens);
  size_t x_len = 0, y_len = 0, b_len = 0;
  const float* x = TypedArg<float>(info, 1, napi_float32_array, "x", &x_len);
  float* y = TypedArg<float>(info, 3, napi_float32_array, "y", &y_len);
  const float* bias = OptionalTyped<float>(info, 4, napi_float32_array, "bias", &b_len);
  const std::string w = what;
  if (x_len != (size_t)m * h.canonical.k) ThrowRange(env, w + ": x must hold m * k values");
  if (y_len != (size_t)m * h.canonical.n) ThrowRange(env, w + ": y must hold m * n values");
  if (bias && b_len != (size_t)h.canonical.n) ThrowRange(env, w + ": bias must hold n values");
  RequireNoAlias(info, 3, {1, 4}, what);
  io.args.m = m;
  io.args.x = x;
  io.args.y = y;
  io.args.bias = bias;
  return io;
}

cpu::ActQuant ActArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return cpu::ActQuant::kPerTokenPerGroup;
  return (cpu::ActQuant)IntArg(info, i, "act", 0, 1);
}

// cpuGemmW4A8(weight, x, m, y, bias|null, act 0|1, isa|null, sync?)
Napi::Value GemmW4A8(const Napi::CallbackInfo& info) {
  auto h = PackedWeightWrap::From(info, 0);
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A8");
  io.args.act = ActArg(info, 5);
  const Isa isa = IsaArg(info, 6, h->packed->isa());
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 7), "cpuGemmW4A8",
                  [h, a, isa]() { return cpu::GemmW4A8WithIsa(*h->packed, isa, a); }, {1, 3, 4}, Napi::Value());
}

// cpuGemmW4A8Reference(weight, x, m, y, bias|null, act 0|1, sync?)
Napi::Value GemmW4A8Reference(const Napi::CallbackInfo& info) {
  auto h = PackedWeightWrap::FromCanonical(info, 0, "cpuGemmW4A8Reference");
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A8Reference");
  io.args.act = ActArg(info, 5);
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 6), "cpuGemmW4A8Reference",
                  [h, a]() { return cpu::GemmW4A8Reference(h->canonical, a); }, {1, 3, 4}, Napi::Value());
}

// cpuGemmW4A16(weight, x, m, y, bias|null, isa|null, sync?)
Napi::Value GemmW4A16(const Napi::CallbackInfo& info) {
  auto h = PackedWeightWrap::FromCanonical(info, 0, "cpuGemmW4A16");
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A16");
  const Isa isa = IsaArg(info, 5, h->packed->isa());
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 6), "cpuGemmW4A16",
                  [h, a, isa]() { return cpu::GemmW4A16(h->canonical, isa, a); }, {1, 3, 4}, Napi::Value());
}

// cpuGemmW4A16Reference(weight, x, m, y, bias|null, sync?)
Napi::Value GemmW4A16Reference(const Napi::CallbackInfo& info) {
  auto h = PackedWeightWrap::FromCanonical(info, 0, "cpuGemmW4A16Reference");
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A16Reference");
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 5), "cpuGemmW4A16Reference",
                  [h, a]() { return cpu::GemmW4A16Reference(h->canonical, a); }, {1, 3, 4}, Napi::Value());
}

// cpuGemmDequantizedF64(weight, x, m, y: Float64Array, sync?): float64 x * dequantized W^T, no bias.
Napi::Value GemmDequantizedF64(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = PackedWeightWrap::FromCanonical(info, 0, "cpuGemmDequantizedF64");
  const int32_t m = (int32_t)IntArg(info, 2, "m", 1, kMaxTokens);
  size_t x_len = 0, y_len = 0;
  const float* x = TypedArg<float>(info, 1, napi_float32_array, "x", &x_len);
  double* y = TypedArg<double>(info, 3, napi_float64_array, "y", &y_len);
  if (x_len != (size_t)m * h->canonical.k) ThrowRange(env, "cpuGemmDequantizedF64: x must hold m * k values");
  if (y_len != (size_t)m * h->canonical.n) ThrowRange(env, "cpuGemmDequantizedF64: y must hold m * n values");
  RequireNoAlias(info, 3, {1}, "cpuGemmDequantizedF64");
  return Dispatch(info, SyncArg(info, 4), "cpuGemmDequantizedF64",
                  [h, m, x, y]() { return cpu::GemmDequantizedF64(h->canonical, m, x, y); }, {1, 3}, Napi::Value());
}

// Kronecker factors at argument positions i..i+5: terms, aRows, aCols, bRows, bCols, a, b.
cpu::KronTerms KronArgs(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  cpu::KronTerms kt{};
  kt.terms = (int32_t)IntArg(info, i, "terms", 1, 1 << 16);
  kt.a_rows = (int32_t)IntArg(info, i + 1, "aRows", 1, kMaxDim);
  kt.a_cols = (int32_t)IntArg(info, i + 2, "aCols", 1, kMaxDim);
  kt.b_rows = (int32_t)IntArg(info, i + 3, "bRows", 1, kMaxDim);
  kt.b_cols = (int32_t)IntArg(info, i + 4, "bCols", 1, kMaxDim);
  if (cpu::KronN(kt) > kMaxDim || cpu::KronK(kt) > kMaxDim)
    ThrowRange(env, std::string(what) + ": aRows * bRows and aCols * bCols must be at most 2^24");
  size_t a_len = 0, b_len = 0;
  kt.a = TypedArg<float>(info, i + 5, napi_float32_array, "a", &a_len);
  kt.b = TypedArg<float>(info, i + 6, napi_float32_array, "b", &b_len);
  if (a_len != (size_t)kt.terms * kt.a_rows * kt.a_cols) ThrowRange(env, std::string(what) + ": a must hold terms * aRows * aCols values");
  if (b_len != (size_t)kt.terms * kt.b_rows * kt.b_cols) ThrowRange(env, std::string(what) + ": b must hold terms * bRows * bCols values");
  return kt;
}

// cpuKroneckerAdd(terms, aRows, aCols, bRows, bCols, a, b, x, m, y, isa|null ('reference' for the
// float64 twin), sync?): y += sum_i (A_i kron B_i) x
Napi::Value KroneckerAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::KronTerms kt = KronArgs(info, 0, "cpuKroneckerAdd");
  const int32_t m = (int32_t)IntArg(info, 8, "m", 1, kMaxTokens);
  size_t x_len = 0, y_len = 0;
  const float* x = TypedArg<float>(info, 7, napi_float32_array, "x", &x_len);
  float* y = TypedArg<float>(info, 9, napi_float32_array, "y", &y_len);
  if (x_len != (size_t)m * cpu::KronK(kt)) ThrowRange(env, "cpuKroneckerAdd: x must hold m * aCols * bCols values");
  if (y_len != (size_t)m * cpu::KronN(kt)) ThrowRange(env, "cpuKroneckerAdd: y must hold m * aRows * bRows values");
  RequireNoAlias(info, 9, {5, 6, 7}, "cpuKroneckerAdd");
  const bool reference = info.Length() > 10 && info[10].IsString() && info[10].As<Napi::String>().Utf8Value() == "reference";
  const Isa isa = reference ? Isa::kScalar : IsaArg(info, 10, cpu::DefaultIsa());
  return Dispatch(info, SyncArg(info, 11), "cpuKroneckerAdd",
                  [kt, m, x, y, isa, reference]() {
                    return reference ? cpu::KroneckerAdapterAddReference(kt, m, x, y)
                                     : cpu::KroneckerAdapterAdd(kt, m, x, y, isa);
                  },
                  {5, 6, 7, 9}, Napi::Value());
}

// cpuGemmW4A8Kron(weight, x, m, y, bias|null, act 0|1, terms, aRows, aCols, bRows, bCols, a, b,
//                 reference: boolean, sync?, bTransposed?): with bTransposed, b holds B_i^T
//                 [terms][bCols][bRows], as W4A8MatMul passes it (KronTerms::b_t)
Napi::Value GemmW4A8Kron(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = PackedWeightWrap::From(info, 0);
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A8Kron");
  io.args.act = ActArg(info, 5);
  cpu::KronTerms kt = KronArgs(info, 6, "cpuGemmW4A8Kron");
  if (info.Length() > 15 && info[15].IsBoolean() && info[15].As<Napi::Boolean>().Value()) {
    kt.b_t = kt.b;
    kt.b = nullptr;
  }
  if (cpu::KronN(kt) != h->canonical.n || cpu::KronK(kt) != h->canonical.k)
    ThrowRange(env, "cpuGemmW4A8Kron: aRows * bRows must equal n and aCols * bCols must equal k");
  RequireNoAlias(info, 3, {11, 12}, "cpuGemmW4A8Kron");
  if (info.Length() <= 13 || !info[13].IsBoolean()) ThrowType(env, "reference must be a boolean");
  const bool reference = info[13].As<Napi::Boolean>().Value();
  if (reference && !h->canonical.codes)
    ThrowRange(env, "cpuGemmW4A8Kron reference needs the canonical weights: prepack with keepCanonical: true");
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 14), "cpuGemmW4A8Kron",
                  [h, kt, a, reference]() {
                    return reference ? cpu::GemmW4A8KronReference(h->canonical, kt, a)
                                     : cpu::GemmW4A8Kron(*h->packed, kt, a);
                  },
                  {1, 3, 4, 11, 12}, Napi::Value());
}

// cpuGemmW4A8LowRank(weight, x, m, y, bias|null, act 0|1, r, u, us|null, v, vs|null, reference, sync?):
// y = W4A8(x) (+bias) + (x U) V. fp32 factors: u [k][r], v [r][n] (LowRankAdd); int8 factors
// (formats.h Int8Rows): u = U^T [r][k] and v [r][n] as Int8Array with row scales us, vs [r] (LowRankAddInt8).
Napi::Value GemmW4A8LowRank(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto h = PackedWeightWrap::From(info, 0);
  GemmIo io = GemmIoArgs(info, *h, "cpuGemmW4A8LowRank");
  io.args.act = ActArg(info, 5);
  const int32_t k = h->canonical.k, n = h->canonical.n;
  const int32_t r = (int32_t)IntArg(info, 6, "r", 1, kMaxDim);
  const bool int8 = info.Length() > 7 && info[7].IsTypedArray() && info[7].As<Napi::TypedArray>().TypedArrayType() == napi_int8_array;
  cpu::LowRankTerm lr{k, r, n, nullptr, nullptr};
  cpu::LowRankInt8Term l8{k, r, n, nullptr, nullptr, nullptr, nullptr};
  size_t u_len = 0, v_len = 0, us_len = 0, vs_len = 0;
  if (int8) {
    l8.ut = TypedArg<int8_t>(info, 7, napi_int8_array, "u", &u_len);
    l8.us = TypedArg<float>(info, 8, napi_float32_array, "us", &us_len);
    l8.v = TypedArg<int8_t>(info, 9, napi_int8_array, "v", &v_len);
    l8.vs = TypedArg<float>(info, 10, napi_float32_array, "vs", &vs_len);
    if (us_len != (size_t)r || vs_len != (size_t)r) ThrowRange(env, "cpuGemmW4A8LowRank: us and vs must hold r values");
  } else {
    lr.u = TypedArg<float>(info, 7, napi_float32_array, "u", &u_len);
    lr.v = TypedArg<float>(info, 9, napi_float32_array, "v", &v_len);
  }
  if (u_len != (size_t)k * r || v_len != (size_t)r * n) ThrowRange(env, "cpuGemmW4A8LowRank: u must hold k * r values and v r * n");
  RequireNoAlias(info, 3, {7, 8, 9, 10}, "cpuGemmW4A8LowRank");
  if (info.Length() <= 11 || !info[11].IsBoolean()) ThrowType(env, "reference must be a boolean");
  const bool reference = info[11].As<Napi::Boolean>().Value();
  if (reference && !h->canonical.codes)
    ThrowRange(env, "cpuGemmW4A8LowRank reference needs the canonical weights: prepack with keepCanonical: true");
  const cpu::GemmArgs a = io.args;
  return Dispatch(info, SyncArg(info, 12), "cpuGemmW4A8LowRank",
                  [h, lr, l8, int8, a, reference]() {
                    if (int8 && !reference) return cpu::GemmW4A8LowRankInt8(*h->packed, l8, a);
                    const Status s = reference ? cpu::GemmW4A8Reference(h->canonical, a) : cpu::GemmW4A8(*h->packed, a);
                    if (s != Status::kOk) return s;
                    if (int8) return cpu::LowRankAddInt8Reference(l8, a.m, a.x, a.y);
                    return reference ? cpu::LowRankAddReference(lr, a.m, a.x, a.y) : cpu::LowRankAdd(lr, a.m, a.x, a.y, h->packed->isa());
                  },
                  {1, 3, 4, 7, 8, 9, 10}, Napi::Value());
}

// cpuDequantizeKN(weight, out: Float32Array [k][n], sync?): the fp32 ONNX MatMul B of the weight.
Napi::Value DequantizeKN(const Napi::CallbackInfo& info) {
  auto h = PackedWeightWrap::FromCanonical(info, 0, "cpuDequantizeKN");
  size_t len = 0;
  float* out = TypedArg<float>(info, 1, napi_float32_array, "out", &len);
  if (len != (size_t)h->canonical.n * h->canonical.k) ThrowRange(info.Env(), "cpuDequantizeKN: out must hold k * n values");
  return Dispatch(info, SyncArg(info, 2), "cpuDequantizeKN", [h, out]() { return cpu::DequantizeToKN(h->canonical, out); },
                  {1}, Napi::Value());
}

// cpuFillRandom(out: Float32Array | Uint8Array, seed, lo, hi, normal?: boolean): test and benchmark
// data. Float32: uniform [lo, hi) or normal(mean lo, std hi); Uint8: uniform integers lo..hi.
Napi::Value FillRandom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t seed = (uint64_t)IntArg(info, 1, "seed", 0, (int64_t)1 << 53);
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) ThrowType(env, "lo and hi must be numbers");
  const double lo = info[2].As<Napi::Number>().DoubleValue(), hi = info[3].As<Napi::Number>().DoubleValue();
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) ThrowRange(env, "lo and hi must be finite with lo <= hi");
  const bool normal = info.Length() > 4 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  std::mt19937_64 rng(seed);
  if (info.Length() > 0 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    size_t len = 0;
    uint8_t* out = TypedArg<uint8_t>(info, 0, napi_uint8_array, "out", &len);
    if (lo < 0 || hi > 255) ThrowRange(env, "byte range must lie in 0..255");
    if (lo == 0 && hi == 255) {
      // Full-range bytes: eight per generator call (benchmarks fill gigabytes of codes).
      size_t i = 0;
      for (; i + 8 <= len; i += 8) {
        const uint64_t r = rng();
        std::memcpy(out + i, &r, 8);
      }
      for (; i < len; ++i) out[i] = (uint8_t)(rng() >> 56);
      return env.Undefined();
    }
    std::uniform_int_distribution<int> d((int)lo, (int)hi);
    for (size_t i = 0; i < len; ++i) out[i] = (uint8_t)d(rng);
    return env.Undefined();
  }
  size_t len = 0;
  float* out = TypedArg<float>(info, 0, napi_float32_array, "out", &len);
  if (normal) {
    std::normal_distribution<float> d((float)lo, (float)hi);
    for (size_t i = 0; i < len; ++i) out[i] = d(rng);
  } else {
    std::uniform_real_distribution<float> d((float)lo, (float)hi);
    for (size_t i = 0; i < len; ++i) out[i] = d(rng);
  }
  return env.Undefined();
}

// cpuRelativeErrorL2(y: Float32Array, ref: Float64Array, count): ||y - ref|| / ||ref|| over the first
// `count` values (benchmarks report each kernel's error against the float64 product).
Napi::Value RelativeErrorL2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t y_len = 0, r_len = 0;
  const float* y = TypedArg<float>(info, 0, napi_float32_array, "y", &y_len);
  const double* ref = TypedArg<double>(info, 1, napi_float64_array, "ref", &r_len);
  const size_t count = (size_t)IntArg(info, 2, "count", 1, (int64_t)1 << 40);
  if (count > y_len || count > r_len) ThrowRange(env, "cpuRelativeErrorL2: count exceeds an array's length");
  double diff = 0, norm = 0;
  for (size_t i = 0; i < count; ++i) {
    const double d = (double)y[i] - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
  }
  return Napi::Number::New(env, norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff));
}

Napi::Value CpuIsas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<Isa> isas = cpu::AvailableIsas();
  Napi::Array out = Napi::Array::New(env, isas.size());
  for (size_t i = 0; i < isas.size(); ++i) out.Set((uint32_t)i, Napi::String::New(env, cpu::IsaName(isas[i])));
  return out;
}

Napi::Value CpuDefaultIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cpu::IsaName(cpu::DefaultIsa()));
}

// cpuIsaUnavailableReason(name) -> "" when available, else why not.
Napi::Value CpuIsaUnavailableReason(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowType(env, "isa must be a string");
  Isa isa;
  if (!cpu::ParseIsa(info[0].As<Napi::String>().Utf8Value().c_str(), &isa)) return Napi::String::New(env, "unknown isa name");
  return Napi::String::New(env, cpu::IsaUnavailableReason(isa));
}

// True when W4A8_ISA named an ISA this CPU lacks and the default fell back to the best available.
Napi::Value CpuIsaOverrideIgnored(const Napi::CallbackInfo& info) {
  cpu::DefaultIsa();  // the flag is set while the default is resolved
  return Napi::Boolean::New(info.Env(), cpu::IsaOverrideIgnored());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  cpu::SetNumThreads((int)IntArg(info, 0, "threads", 0, 1024));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cpu::NumThreads()); }

void Init(Napi::Env env, Napi::Object exports) {
  PackedWeightWrap::Init(env, exports);
  exports.Set("cpuIsas", Napi::Function::New(env, CpuIsas));
  exports.Set("cpuDefaultIsa", Napi::Function::New(env, CpuDefaultIsa));
  exports.Set("cpuIsaUnavailableReason", Napi::Function::New(env, CpuIsaUnavailableReason));
  exports.Set("cpuIsaOverrideIgnored", Napi::Function::New(env, CpuIsaOverrideIgnored));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("cpuPrepackWeight", Napi::Function::New(env, PrepackWeight));
  exports.Set("cpuGemmW4A8", Napi::Function::New(env, GemmW4A8));
  exports.Set("cpuGemmW4A8Reference", Napi::Function::New(env, GemmW4A8Reference));
  exports.Set("cpuGemmW4A16", Napi::Function::New(env, GemmW4A16));
  exports.Set("cpuGemmW4A16Reference", Napi::Function::New(env, GemmW4A16Reference));
  exports.Set("cpuGemmDequantizedF64", Napi::Function::New(env, GemmDequantizedF64));
  exports.Set("cpuKroneckerAdd", Napi::Function::New(env, KroneckerAdd));
  exports.Set("cpuGemmW4A8Kron", Napi::Function::New(env, GemmW4A8Kron));
  exports.Set("cpuGemmW4A8LowRank", Napi::Function::New(env, GemmW4A8LowRank));
  exports.Set("cpuDequantizeKN", Napi::Function::New(env, DequantizeKN));
  exports.Set("cpuFillRandom", Napi::Function::New(env, FillRandom));
  exports.Set("cpuRelativeErrorL2", Napi::Function::New(env, RelativeErrorL2));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
