// Shared helpers for the N-API glue. Validation happens in TypeScript (lib/native); these
// checks are the last line that keeps a wrong call from crashing the process.
#pragma once
#include <napi.h>
#include <cmath>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "w4a8/status.h"

namespace w4a8::addon {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] inline void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

// The JS error for a non-OK status: message "<what>: <status name>", plus `status` (the number)
// and `code` (StatusCode, e.g. 'W4A8_NUMERICAL_ERROR') so that callers branch on the code, never
// on the message text. Every error built from a Status goes through here.
inline Napi::Error StatusError(Napi::Env env, Status s, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + StatusName(s));
  e.Set("status", Napi::Number::New(env, static_cast<int>(s)));
  e.Set("code", Napi::String::New(env, StatusCode(s)));
  return e;
}

inline void ThrowIfError(Napi::Env env, Status s, const char* what) {
  if (s != Status::kOk) throw StatusError(env, s, what);
}

// Runs `work`, turning the C++ exceptions that may escape the core (allocation failures, a task
// exception rethrown by the thread pool) into a status: nothing may unwind into N-API from a worker.
inline Status Guarded(const std::function<Status()>& work) { return StatusFromExceptions(work); }

// A typed-array argument checked for kind; length checks stay with the caller.
template <typename T>
T* TypedArg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name,
            size_t* length = nullptr) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray()) ThrowType(env, std::string(name) + " must be a typed array");
  Napi::TypedArray arr = info[i].As<Napi::TypedArray>();
  if (arr.TypedArrayType() != type) ThrowType(env, std::string(name) + " has the wrong element type");
  if (length) *length = arr.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
}

inline int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= (double)lo && v <= (double)hi) || v != (double)(int64_t)v)
    ThrowRange(env, std::string(name) + " is out of range");
  return (int64_t)v;
}

// A finite number argument; the ranges are the core function's to check (it returns a status).
inline double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) ThrowRange(env, std::string(name) + " must be finite");
  return v;
}

// Runs `work` on the libuv pool and resolves a Promise with `done()`'s value. The typed
// arrays the work touches must be kept alive by the caller: pass them in `keepAlive`.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Status()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  PromiseWorker(Napi::Env env, const char* what, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), what_(what),
        work_(std::move(work)), done_(std::move(done)) {}

  void Keep(Napi::Value v) { refs_.push_back(Napi::Persistent(v)); }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { status_ = Guarded(work_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (status_ != Status::kOk) {
      deferred_.Reject(StatusError(env, status_, what_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  const char* what_;
  Work work_;
  Done done_;
  Status status_ = Status::kOk;
  std::vector<Napi::Reference<Napi::Value>> refs_;
};

// Queue a worker and return its promise; `keep` lists the JS values (typed arrays) it reads or writes.
inline Napi::Promise RunAsync(Napi::Env env, const char* what, PromiseWorker::Work work,
                              std::initializer_list<Napi::Value> keep, PromiseWorker::Done done = nullptr) {
  auto* worker = new PromiseWorker(env, what, std::move(work), std::move(done));
  for (const auto& v : keep) worker->Keep(v);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace w4a8::addon
