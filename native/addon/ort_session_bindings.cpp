// ONNX Runtime sessions of the addon (ort_runtime.h): ortOpen(libraryPath) opens the library
// once; ortCreateSession / ortRun run on the libuv pool and return Promises; a session handle is an
// object whose finalizer (or ortRelease) drops the session once no run holds it.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/ort_runtime.h"

namespace w4a8::addon {
namespace {

using SessionPtr = std::shared_ptr<const ort::Session>;
struct Handle {
  SessionPtr session;
};

// An AsyncWorker whose failure carries ORT's message (a Status has none).
class OrtWorker : public Napi::AsyncWorker {
 public:
  explicit OrtWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Napi::Value Result(Napi::Env env) = 0;
  void OnOK() override {
    try {
      deferred_.Resolve(Result(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), "W4A8_ORT_ERROR"));
    deferred_.Reject(err.Value());
  }
  Napi::Promise::Deferred deferred_;
};

Napi::Array Infos(Napi::Env env, const std::vector<ort::ValueInfo>& list) {
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const ort::ValueInfo& v = list[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", v.name);
    o.Set("isTensor", v.is_tensor);
    o.Set("type", (double)v.type);
    Napi::Array dims = Napi::Array::New(env, v.dims.size());
    for (size_t d = 0; d < v.dims.size(); ++d) {
      if (v.dims[d] >= 0) dims.Set(d, Napi::Number::New(env, (double)v.dims[d]));
      else dims.Set(d, Napi::String::New(env, d < v.symbolic.size() ? v.symbolic[d] : ""));
    }
    o.Set("shape", dims);
    arr.Set(i, o);
  }
  return arr;
}

class CreateWorker : public OrtWorker {
 public:
  CreateWorker(Napi::Env env, const ort::Runtime* rt, std::string path, ort::SessionConfig cfg)
      : OrtWorker(env), rt_(rt), path_(std::move(path)), cfg_(std::move(cfg)) {}
  void Execute() override {
    std::string error;
    try {
      session_ = ort::Session::Create(*rt_, path_, cfg_, &error);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!session_) SetError(error);
  }
  Napi::Value Result(Napi::Env env) override {
    auto* handle = new Handle{SessionPtr(session_.release())};
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputs", Infos(env, handle->session->inputs()));
    o.Set("outputs", Infos(env, handle->session->outputs()));
    o.Set("handle", Napi::External<Handle>::New(env, handle, [](Napi::Env, Handle* h) { delete h; }));
    return o;
  }

 private:
  const ort::Runtime* rt_;
  std::string path_;
  ort::SessionConfig cfg_;
  std::unique_ptr<ort::Session> session_;
};

class RunWorker : public OrtWorker {
 public:
  RunWorker(Napi::Env env, SessionPtr session) : OrtWorker(env), session_(std::move(session)) {}
  std::vector<ort::InputTensor> feeds;
  std::vector<std::string> fetches;
  std::vector<Napi::Reference<Napi::Value>> keep;
  void Execute() override {
    std::string error;
    bool ok = false;
    try {
      ok = session_->Run(feeds, fetches, &outputs_, &error, /*keep_values=*/true);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!ok) SetError(error);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array arr = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      ort::OutputTensor& t = outputs_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("type", (double)t.type);
      Napi::Array dims = Napi::Array::New(env, t.dims.size());
      for (size_t d = 0; d < t.dims.size(); ++d) dims.Set(d, Napi::Number::New(env, (double)t.dims[d]));
      o.Set("dims", dims);
      // One copy, from ORT's output buffer straight into JS memory (decode steps return the whole KV
      // cache: an intermediate copy cost a measurable part of a step).
      Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, t.size);
      if (t.size) std::memcpy(buf.Data(), t.data, t.size);
      t.value.reset();
      o.Set("data", buf);
      arr.Set(i, o);
    }
    return arr;
  }

 private:
  SessionPtr session_;
  std::vector<ort::OutputTensor> outputs_;
};

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowType(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Handle* HandleArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsExternal()) ThrowType(info.Env(), "session handle must come from ortCreateSession");
  return info[i].As<Napi::External<Handle>>().Data();
}

// ortOpen(libraryPath) -> ONNX Runtime version string; throws with the dlopen message.
Napi::Value OrtOpen(const Napi::CallbackInfo& info) {
  const std::string path = StringArg(info, 0, "libraryPath");
  std::string error;
  const ort::Runtime* rt = ort::OpenRuntime(path, &error);
  if (!rt) {
    Napi::Error e = Napi::Error::New(info.Env(), error);
    e.Set("code", Napi::String::New(info.Env(), "W4A8_ORT_UNAVAILABLE"));
    throw e;
  }
  return Napi::String::New(info.Env(), rt->version);
}

// ortCreateSession(modelPath, intraOpThreads, configEntries: [key, value][]) -> Promise<{handle, inputs, outputs}>
Napi::Value OrtCreateSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ort::Runtime* rt = ort::CurrentRuntime();
  if (!rt) throw Napi::Error::New(env, "ONNX Runtime is not open: call ortOpen(libraryPath) first");
  const std::string path = StringArg(info, 0, "modelPath");
  ort::SessionConfig cfg;
  cfg.intra_op_threads = (int)IntArg(info, 1, "intraOpThreads", 0, 4096);
  if (info.Length() <= 2 || !info[2].IsArray()) ThrowType(env, "configEntries must be an array of [key, value] pairs");
  Napi::Array entries = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    Napi::Value e = entries.Get(i);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2) ThrowType(env, "configEntries must be an array of [key, value] pairs");
    Napi::Array kv = e.As<Napi::Array>();
    if (!kv.Get(0u).IsString() || !kv.Get(1u).IsString()) ThrowType(env, "configEntries keys and values must be strings");
    cfg.entries.emplace_back(kv.Get(0u).As<Napi::String>().Utf8Value(), kv.Get(1u).As<Napi::String>().Utf8Value());
  }
  auto* w = new CreateWorker(env, rt, path, std::move(cfg));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ortRun(handle, feeds: {name, type, dims, data: TypedArray}[], fetches: string[]) -> Promise<{name, type, dims, data: ArrayBuffer}[]>
Napi::Value OrtRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle* h = HandleArg(info, 0);
  if (!h->session) throw Napi::Error::New(env, "the session was released");
  if (info.Length() <= 2 || !info[1].IsArray() || !info[2].IsArray()) ThrowType(env, "feeds and fetches must be arrays");
  auto* w = new RunWorker(env, h->session);
  std::unique_ptr<RunWorker> guard(w);
  Napi::Array feeds = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < feeds.Length(); ++i) {
    Napi::Value fv = feeds.Get(i);
    if (!fv.IsObject()) ThrowType(env, "each feed must be an object {name, type, dims, data}");
    Napi::Object f = fv.As<Napi::Object>();
    if (!f.Get("name").IsString() || !f.Get("type").IsNumber() || !f.Get("dims").IsArray() || !f.Get("data").IsTypedArray())
      ThrowType(env, "each feed must be an object {name: string, type: number, dims: number[], data: TypedArray}");
    ort::InputTensor t;
    t.name = f.Get("name").As<Napi::String>().Utf8Value();
    t.type = (ort::ONNXTensorElementDataType)f.Get("type").As<Napi::Number>().Int32Value();
    const size_t eb = ort::ElementBytes(t.type);
    if (eb == 0) ThrowType(env, "feed \"" + t.name + "\" has an unsupported element type");
    Napi::Array dims = f.Get("dims").As<Napi::Array>();
    size_t count = 1;
    for (uint32_t d = 0; d < dims.Length(); ++d) {
      Napi::Value dv = dims.Get(d);
      const double x = dv.IsNumber() ? dv.As<Napi::Number>().DoubleValue() : -1;
      if (!(x >= 0 && x <= 9007199254740991.0) || x != (double)(int64_t)x) ThrowRange(env, "feed \"" + t.name + "\" has a bad dimension");
      t.dims.push_back((int64_t)x);
      count *= (size_t)x;
    }
    Napi::TypedArray arr = f.Get("data").As<Napi::TypedArray>();
    t.bytes = arr.ByteLength();
    if (t.bytes != count * eb) ThrowRange(env, "feed \"" + t.name + "\" holds " + std::to_string(t.bytes) + " bytes; its dims need " + std::to_string(count * eb));
    t.data = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    w->keep.push_back(Napi::Persistent(Napi::Value(arr)));
    w->feeds.push_back(std::move(t));
  }
  Napi::Array fetches = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < fetches.Length(); ++i) {
    if (!fetches.Get(i).IsString()) ThrowType(env, "fetches must be output names");
    w->fetches.push_back(fetches.Get(i).As<Napi::String>().Utf8Value());
  }
  guard.release();
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ortRelease(handle): the session goes once runs in flight finish.
Napi::Value OrtRelease(const Napi::CallbackInfo& info) {
  HandleArg(info, 0)->session.reset();
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ortOpen", Napi::Function::New(env, OrtOpen));
  exports.Set("ortCreateSession", Napi::Function::New(env, OrtCreateSession));
  exports.Set("ortRun", Napi::Function::New(env, OrtRun));
  exports.Set("ortRelease", Napi::Function::New(env, OrtRelease));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
