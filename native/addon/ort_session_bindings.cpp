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

// Outputs of at least this many bytes reach JS without a copy: an external ArrayBuffer over ORT's
// own output buffer, which the buffer's finalizer releases (a decode step's KV cache is megabytes,
// and a fresh ArrayBuffer costs a zero fill and a page fault per 4 KiB on top of the copy). Smaller
// ones are copied: a few kB are cheaper to copy than to track until a collection.
constexpr size_t kZeroCopyMinBytes = 256 * 1024;

class RunWorker : public OrtWorker {
 public:
  RunWorker(Napi::Env env, SessionPtr session) : OrtWorker(env), session_(std::move(session)) {}
  std::vector<ort::InputTensor> feeds;
  std::vector<std::string> fetches;
  // Per fetch: return only the last row (dimension -2) of each leading index, e.g. the next-token
  // logits [1, 1, vocab] of a prefill's [1, seq, vocab].
  std::vector<bool> last_row;
  // Outputs written into the caller's typed arrays (Session::Run's `into`), not returned.
  std::vector<ort::InputTensor> into;
  std::vector<Napi::Reference<Napi::Value>> keep;
  void Execute() override {
    std::string error;
    bool ok = false;
    try {
      ok = session_->Run(feeds, fetches, &outputs_, &error, /*keep_values=*/true, into);
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
      Napi::ArrayBuffer buf;
      if (i < last_row.size() && last_row[i] && t.dims.size() >= 2) {
        buf = LastRows(env, &t);
      } else if (t.size >= kZeroCopyMinBytes) {
        buf = Borrowed(env, &t);
      } else {
        buf = Napi::ArrayBuffer::New(env, t.size);
        if (t.size) std::memcpy(buf.Data(), t.data, t.size);
      }
      t.value.reset();
      Napi::Array dims = Napi::Array::New(env, t.dims.size());
      for (size_t d = 0; d < t.dims.size(); ++d) dims.Set(d, Napi::Number::New(env, (double)t.dims[d]));
      o.Set("dims", dims);
      o.Set("data", buf);
      arr.Set(i, o);
    }
    return arr;
  }

 private:
  // The last row of every leading index, copied; t->dims becomes [..., 1, cols].
  static Napi::ArrayBuffer LastRows(Napi::Env env, ort::OutputTensor* t) {
    const size_t rank = t->dims.size();
    const size_t rows = (size_t)t->dims[rank - 2];
    const size_t row_bytes = (size_t)t->dims[rank - 1] * ort::ElementBytes(t->type);
    size_t lead = 1;
    for (size_t d = 0; d + 2 < rank; ++d) lead *= (size_t)t->dims[d];
    if (rows == 0) return Napi::ArrayBuffer::New(env, 0);  // nothing to take: dims stay as they are
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, lead * row_bytes);
    for (size_t b = 0; b < lead && row_bytes != 0; ++b) {
      std::memcpy(static_cast<uint8_t*>(buf.Data()) + b * row_bytes, t->data + (b * rows + rows - 1) * row_bytes, row_bytes);
    }
    t->dims[rank - 2] = 1;
    return buf;
  }
  // ORT's buffer itself, kept alive by the ArrayBuffer; a copy where external buffers are refused
  // (runtimes with a V8 sandbox).
  static Napi::ArrayBuffer Borrowed(Napi::Env env, ort::OutputTensor* t) {
    auto* owner = new std::shared_ptr<void>(t->value);
    napi_value value = nullptr;
    const napi_status st = napi_create_external_arraybuffer(
        env, const_cast<uint8_t*>(t->data), t->size,
        [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<void>*>(hint); }, owner, &value);
    if (st == napi_ok) return Napi::ArrayBuffer(env, value);
    delete owner;
    const napi_extended_error_info* info = nullptr;
    napi_get_last_error_info(env, &info);  // clears the failed call's error state
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, t->size);
    std::memcpy(buf.Data(), t->data, t->size);
    return buf;
  }
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

// {name, type, dims, data: TypedArray} as a tensor over the array's memory, which `keep` holds for the run.
ort::InputTensor TensorArg(Napi::Env env, Napi::Value fv, const char* what, std::vector<Napi::Reference<Napi::Value>>* keep) {
  const std::string w = what;
  if (!fv.IsObject()) ThrowType(env, "each " + w + " must be an object {name, type, dims, data}");
  Napi::Object f = fv.As<Napi::Object>();
  if (!f.Get("name").IsString() || !f.Get("type").IsNumber() || !f.Get("dims").IsArray() || !f.Get("data").IsTypedArray())
    ThrowType(env, "each " + w + " must be an object {name: string, type: number, dims: number[], data: TypedArray}");
  ort::InputTensor t;
  t.name = f.Get("name").As<Napi::String>().Utf8Value();
  t.type = (ort::ONNXTensorElementDataType)f.Get("type").As<Napi::Number>().Int32Value();
  const size_t eb = ort::ElementBytes(t.type);
  if (eb == 0) ThrowType(env, w + " \"" + t.name + "\" has an unsupported element type");
  Napi::Array dims = f.Get("dims").As<Napi::Array>();
  size_t count = 1;
  for (uint32_t d = 0; d < dims.Length(); ++d) {
    Napi::Value dv = dims.Get(d);
    const double x = dv.IsNumber() ? dv.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0 && x <= 9007199254740991.0) || x != (double)(int64_t)x) ThrowRange(env, w + " \"" + t.name + "\" has a bad dimension");
    t.dims.push_back((int64_t)x);
    count *= (size_t)x;
  }
  Napi::TypedArray arr = f.Get("data").As<Napi::TypedArray>();
  t.bytes = arr.ByteLength();
  if (t.bytes != count * eb) ThrowRange(env, w + " \"" + t.name + "\" holds " + std::to_string(t.bytes) + " bytes; its dims need " + std::to_string(count * eb));
  t.data = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  keep->push_back(Napi::Persistent(Napi::Value(arr)));
  return t;
}

// ortRun(handle, feeds: {name, type, dims, data: TypedArray}[], fetches: string[], lastRowOf?: string[],
//        into?: {name, type, dims, data: TypedArray}[]) -> Promise<{name, type, dims, data: ArrayBuffer}[]>
// `into`: outputs ONNX Runtime writes into the given arrays (their shapes must be the outputs'); they
// may be feeds' arrays too (a KV cache updated in place).

Napi::Value OrtRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handle* h = HandleArg(info, 0);
  if (!h->session) throw Napi::Error::New(env, "the session was released");
  if (info.Length() <= 2 || !info[1].IsArray() || !info[2].IsArray()) ThrowType(env, "feeds and fetches must be arrays");
  auto* w = new RunWorker(env, h->session);
  std::unique_ptr<RunWorker> guard(w);
  Napi::Array feeds = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < feeds.Length(); ++i) w->feeds.push_back(TensorArg(env, feeds.Get(i), "feed", &w->keep));
  Napi::Array fetches = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < fetches.Length(); ++i) {
    if (!fetches.Get(i).IsString()) ThrowType(env, "fetches must be output names");
    w->fetches.push_back(fetches.Get(i).As<Napi::String>().Utf8Value());
  }
  // Optional 4th argument: the fetches of which only the last row (dimension -2) is returned.
  w->last_row.assign(w->fetches.size(), false);
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsArray()) ThrowType(env, "lastRowOf must be an array of fetch names");
    Napi::Array names = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      if (!names.Get(i).IsString()) ThrowType(env, "lastRowOf must be an array of fetch names");
      const std::string n = names.Get(i).As<Napi::String>().Utf8Value();
      bool found = false;
      for (size_t f = 0; f < w->fetches.size(); ++f) {
        if (w->fetches[f] == n) w->last_row[f] = found = true;
      }
      if (!found) ThrowRange(env, "lastRowOf names \"" + n + "\", which is not fetched");
    }
  }
  // Optional 5th argument: outputs to write into the given typed arrays ({name, type, dims, data}).
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsArray()) ThrowType(env, "into must be an array of {name, type, dims, data}");
    Napi::Array into = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < into.Length(); ++i) {
      ort::InputTensor t = TensorArg(env, into.Get(i), "output", &w->keep);
      for (const std::string& f : w->fetches)
        if (f == t.name) ThrowRange(env, "output \"" + t.name + "\" is both fetched and written into a given array");
      w->into.push_back(std::move(t));
    }
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
