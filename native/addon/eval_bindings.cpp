// JS glue for eval_ops: tokenNll (sync), tokenNllAsync (Promise, libuv pool), rowArgmax, rowSample.
// lib/native/eval_ops.ts validates first; the checks here only keep a bad call from crashing.
#include <algorithm>
#include <cmath>

#include "napi_util.h"
#include "registry.h"
#include "w4a8/eval_ops.h"

namespace w4a8::addon {
namespace {

struct LogitsArg {
  const void* data;
  size_t length;  // elements
  LogitsType type;
};

// Argument `i` is the logits array and `i + 1` its type code: 0 = Float32Array, 1 = Uint16Array (fp16 bits).
LogitsArg GetLogits(const Napi::CallbackInfo& info, size_t i) {
  const int64_t code = IntArg(info, i + 1, "logits type", 0, 1);
  LogitsArg arg{};
  if (code == 0) {
    arg.data = TypedArg<float>(info, i, napi_float32_array, "logits", &arg.length);
    arg.type = LogitsType::kFloat32;
  } else {
    arg.data = TypedArg<uint16_t>(info, i, napi_uint16_array, "logits", &arg.length);
    arg.type = LogitsType::kFloat16;
  }
  return arg;
}

struct NllCall {
  LogitsArg logits;
  size_t rows, vocab;
  const int32_t* targets;
  double* out;
};

// (logits, type, rows, vocab, targets: Int32Array, out: Float64Array)
NllCall GetNllCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NllCall c{};
  c.logits = GetLogits(info, 0);
  c.rows = (size_t)IntArg(info, 2, "rows", 0, (int64_t)1 << 40);
  c.vocab = (size_t)IntArg(info, 3, "vocab", 1, (int64_t)1 << 40);
  size_t n_targets = 0, n_out = 0;
  c.targets = TypedArg<int32_t>(info, 4, napi_int32_array, "targets", &n_targets);
  c.out = TypedArg<double>(info, 5, napi_float64_array, "out", &n_out);
  if (c.rows > 0 && c.logits.length / c.vocab < c.rows) ThrowRange(env, "logits hold fewer than rows * vocab values");
  if (n_targets < c.rows) ThrowRange(env, "targets hold fewer than rows ids");
  if (n_out < c.rows) ThrowRange(env, "out holds fewer than rows values");
  for (size_t r = 0; r < c.rows; ++r)
    if (c.targets[r] < 0 || (size_t)c.targets[r] >= c.vocab) ThrowRange(env, "a target id is outside [0, vocab)");
  return c;
}

Napi::Value TokenNllSync(const Napi::CallbackInfo& info) {
  NllCall c = GetNllCall(info);
  double total = 0;
  ThrowIfError(info.Env(), TokenNll(c.logits.data, c.logits.type, c.rows, c.vocab, c.targets, c.out, &total), "tokenNll");
  return Napi::Number::New(info.Env(), total);
}

Napi::Value TokenNllAsync(const Napi::CallbackInfo& info) {
  NllCall c = GetNllCall(info);
  auto total = std::make_shared<double>(0.0);
  return RunAsync(
      info.Env(), "tokenNllAsync",
      [c, total]() { return TokenNll(c.logits.data, c.logits.type, c.rows, c.vocab, c.targets, c.out, total.get()); },
      {info[0], info[4], info[5]},
      [total](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *total); });
}

// Arguments 0..3 (logits, type, row, vocab): where that row starts.
struct RowArg {
  const void* start;
  LogitsType type;
  size_t vocab;
};

RowArg GetRow(const Napi::CallbackInfo& info) {
  LogitsArg logits = GetLogits(info, 0);
  const size_t row = (size_t)IntArg(info, 2, "row", 0, (int64_t)1 << 40);
  const size_t vocab = (size_t)IntArg(info, 3, "vocab", 1, (int64_t)1 << 40);
  if (logits.length / vocab <= row) ThrowRange(info.Env(), "row is past the end of logits");
  const size_t elem = logits.type == LogitsType::kFloat32 ? 4 : 2;
  return {static_cast<const uint8_t*>(logits.data) + row * vocab * elem, logits.type, vocab};
}

// (logits, type, row, vocab) -> index of the row's maximum, or -1 when the row is all NaN.
Napi::Value RowArgmaxFn(const Napi::CallbackInfo& info) {
  const RowArg r = GetRow(info);
  int64_t index = -1;
  ThrowIfError(info.Env(), RowArgmax(r.start, r.type, r.vocab, &index), "rowArgmax");
  return Napi::Number::New(info.Env(), (double)index);
}

// (logits, type, row, vocab, temperature, topK, topP, coin) -> the sampled index, or -1 for a NaN row.
Napi::Value RowSampleFn(const Napi::CallbackInfo& info) {
  const RowArg r = GetRow(info);
  SamplingParams params;
  params.temperature = (float)NumberArg(info, 4, "temperature");
  params.top_k = (int32_t)IntArg(info, 5, "topK", 0, INT32_MAX);
  params.top_p = (float)NumberArg(info, 6, "topP");
  // A double just below 1 rounds to 1.0f; it means the top of the distribution, not an error.
  const double coin_d = NumberArg(info, 7, "coin");
  const float coin = coin_d < 1.0 ? std::min((float)coin_d, std::nextafter(1.0f, 0.0f)) : (float)coin_d;
  int64_t index = -1;
  ThrowIfError(info.Env(), SampleRow(r.start, r.type, r.vocab, params, coin, &index), "rowSample");
  return Napi::Number::New(info.Env(), (double)index);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tokenNll", Napi::Function::New(env, TokenNllSync));
  exports.Set("tokenNllAsync", Napi::Function::New(env, TokenNllAsync));
  exports.Set("rowArgmax", Napi::Function::New(env, RowArgmaxFn));
  exports.Set("rowSample", Napi::Function::New(env, RowSampleFn));
}

}  // namespace
W4A8_ADDON_MODULE(Init);
}  // namespace w4a8::addon
