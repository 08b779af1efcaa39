// com.w4a8 CachedAttention and RmsNorm (ort_op.h): the OrtCustomOp callbacks around the kernels of
// decoder_ops.h. Both are fp32; like W4A8MatMul they run their tasks on the session's intra-op threads.
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "w4a8/decoder_ops.h"
#include "w4a8/ort_op.h"
#include "op_support.h"

namespace w4a8::ort {
namespace {

// What every op kernel here shares: ORT's API, input access, errors with the op's name.
class KernelBase {
 public:
  KernelBase(const OrtApiView& api, const char* name) : api_(api), name_(name) {}
  virtual ~KernelBase() = default;

  OrtStatus* Compute(OrtKernelContext* ctx) {
    try {
      OrtThreads threads{&api_, ctx};
      cpu::ScopedTaskRunner runner(&OrtThreads::Run, &threads);
      return Run(ctx);
    } catch (const std::bad_alloc&) {
      return api_.CreateStatus(ORT_FAIL, (std::string(name_) + ": out of memory").c_str());
    } catch (...) {
      return api_.CreateStatus(ORT_FAIL, (std::string(name_) + ": unexpected exception").c_str());
    }
  }

 protected:
  virtual OrtStatus* Run(OrtKernelContext* ctx) = 0;

  OrtStatus* Fail(const std::string& msg) const { return api_.CreateStatus(ORT_INVALID_ARGUMENT, (std::string(name_) + ": " + msg).c_str()); }

  // Input `i`; *found is false when the node lacks it.
  OrtStatus* Input(OrtKernelContext* ctx, size_t i, TensorView* t, bool* found = nullptr) const {
    size_t n = 0;
    W4A8_ORT_TRY(api_.KernelContext_GetInputCount(ctx, &n));
    const OrtValue* v = nullptr;
    if (i < n) W4A8_ORT_TRY(api_.KernelContext_GetInput(ctx, i, &v));
    if (found) *found = v != nullptr;
    if (!v) return found ? nullptr : Fail("input " + std::to_string(i) + " is missing");
    return Describe(api_, v, t);
  }

  OrtStatus* Output(OrtKernelContext* ctx, size_t i, const std::vector<int64_t>& dims, float** data) const {
    OrtValue* v = nullptr;
    W4A8_ORT_TRY(api_.KernelContext_GetOutput(ctx, i, dims.data(), dims.size(), &v));
    void* raw = nullptr;
    W4A8_ORT_TRY(api_.GetTensorMutableData(v, &raw));
    *data = static_cast<float*>(raw);
    return nullptr;
  }

  int64_t IntAttr(const OrtKernelInfo* info, const char* name, int64_t fallback) const {
    int64_t v = 0;
    if (OrtStatus* s = api_.KernelInfoGetAttribute_int64(info, name, &v)) {
      api_.ReleaseStatus(s);
      return fallback;
    }
    return v;
  }
  float FloatAttr(const OrtKernelInfo* info, const char* name, float fallback) const {
    float v = 0;
    if (OrtStatus* s = api_.KernelInfoGetAttribute_float(info, name, &v)) {
      api_.ReleaseStatus(s);
      return fallback;
    }
    return v;
  }

  OrtApiView api_;
  const char* name_;
};

constexpr size_t kQuery = 0, kKey = 1, kValue = 2, kPastKey = 3, kPastValue = 4, kMask = 5, kPositions = 6, kCos = 7, kSin = 8;

class AttentionKernel : public KernelBase {
 public:
  explicit AttentionKernel(const OrtApiView& api) : KernelBase(api, kAttentionOpType) {}

  OrtStatus* Init(const OrtKernelInfo* info) {
    heads_ = IntAttr(info, "num_heads", 0);
    kv_heads_ = IntAttr(info, "kv_num_heads", 0);
    scale_ = FloatAttr(info, "scale", 0.0f);
    const int64_t interleaved = IntAttr(info, "rotary_interleaved", 1);
    if (interleaved != 0 && interleaved != 1) return Fail("rotary_interleaved must be 0 or 1");
    interleaved_ = interleaved == 1;
    if (heads_ < 1 || kv_heads_ < 1 || heads_ % kv_heads_ != 0 || heads_ > 65536)
      return Fail("num_heads (" + std::to_string(heads_) + ") must be a positive multiple of kv_num_heads (" + std::to_string(kv_heads_) + ")");
    if (!std::isfinite(scale_) || scale_ < 0.0f) return Fail("scale must be finite and >= 0 (0: 1 / sqrt(head size))");
    return nullptr;
  }

 private:
  OrtStatus* Run(OrtKernelContext* ctx) override {
    TensorView q, k, v, pk, pv, mask, pos, cos, sin;
    bool has_k = false, has_v = false, has_pos = false;
    W4A8_ORT_TRY(Input(ctx, kQuery, &q));
    W4A8_ORT_TRY(Input(ctx, kKey, &k, &has_k));
    W4A8_ORT_TRY(Input(ctx, kValue, &v, &has_v));
    W4A8_ORT_TRY(Input(ctx, kPastKey, &pk));
    W4A8_ORT_TRY(Input(ctx, kPastValue, &pv));
    W4A8_ORT_TRY(Input(ctx, kMask, &mask));
    W4A8_ORT_TRY(Input(ctx, kPositions, &pos, &has_pos));
    W4A8_ORT_TRY(Input(ctx, kCos, &cos));
    W4A8_ORT_TRY(Input(ctx, kSin, &sin));
    if (has_k != has_v) return Fail("key and value come together (or neither, for a packed query)");
    for (const TensorView* t : {&q, &k, &v, &pk, &pv, &cos, &sin})
      if (t->data && t->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) return Fail("float tensors must be fp32");
    if (mask.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 || (has_pos && pos.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64))
      return Fail("attention_mask and position_ids must be int64");
    if (pk.dims.size() != 4 || pv.dims != pk.dims || pk.dims[1] != kv_heads_)
      return Fail("past_key " + DimsText(pk.dims) + " and past_value " + DimsText(pv.dims) + " must both be [batch, kv_num_heads = " +
                  std::to_string(kv_heads_) + ", past, head_size]");
    const int64_t batch = pk.dims[0], past = pk.dims[2], hs = pk.dims[3];
    if (cos.dims.size() != 2 || sin.dims != cos.dims || cos.dims[1] * 2 != hs)
      return Fail("cos_cache " + DimsText(cos.dims) + " and sin_cache " + DimsText(sin.dims) + " must be [rows, head_size / 2 = " + std::to_string(hs / 2) + "]");
    const int64_t qw = heads_ * hs, kw = kv_heads_ * hs;
    const int64_t q_width = has_k ? qw : qw + 2 * kw;
    if (q.dims.size() != 3 || q.dims[0] != batch || q.dims[2] != q_width)
      return Fail("query is " + DimsText(q.dims) + "; expected [batch = " + std::to_string(batch) + ", seq, " + std::to_string(q_width) +
                  (has_k ? "]" : "] (query, key and value packed)"));
    const int64_t seq = q.dims[1];
    if (has_k && (k.dims != std::vector<int64_t>{batch, seq, kw} || v.dims != k.dims))
      return Fail("key " + DimsText(k.dims) + " and value " + DimsText(v.dims) + " must be [" + std::to_string(batch) + ", " +
                  std::to_string(seq) + ", " + std::to_string(kw) + "]");
    // Two ways to hold the cache, told apart by the mask's length (the tokens seen so far): past holds
    // exactly the past rows (mask = past + seq; present is a new [.., past + seq, ..] tensor), or past
    // is a buffer of `capacity` rows of which the first mask - seq are filled (mask <= capacity;
    // present has past's shape and may be bound to past's own memory, as ORT GenAI shares them).
    if (mask.dims.size() != 2 || mask.dims[0] != batch || (mask.dims[1] != past + seq && (mask.dims[1] < seq || mask.dims[1] > past)))
      return Fail("attention_mask is " + DimsText(mask.dims) + "; expected [" + std::to_string(batch) + ", " + std::to_string(past + seq) +
                  "] (past_key holds the past), or [" + std::to_string(batch) + ", past + " + std::to_string(seq) + " <= " + std::to_string(past) +
                  "] (past_key is a buffer of " + std::to_string(past) + " rows)");
    const bool shared = mask.dims[1] != past + seq;
    const int64_t capacity = shared ? past : 0, filled = shared ? mask.dims[1] - seq : past;
    if (has_pos && pos.dims != std::vector<int64_t>{batch, seq})
      return Fail("position_ids is " + DimsText(pos.dims) + "; expected [" + std::to_string(batch) + ", " + std::to_string(seq) + "]");
    if (batch > INT32_MAX || seq > INT32_MAX || past + seq > INT32_MAX || hs > 65536 || cos.dims[0] > INT32_MAX)
      return Fail("shapes too large");
    // Without position_ids, as GroupQueryAttention derives them: a prompt into an empty cache sits at
    // 0..seq-1; later tokens end at the row's count of attended positions (mask ones) - 1.
    thread_local std::vector<int64_t> derived;
    if (!has_pos) {
      derived.resize((size_t)(batch * seq));
      const auto* m = static_cast<const int64_t*>(mask.data);
      for (int64_t b = 0; b < batch; ++b) {
        int64_t ones = 0;
        for (int64_t j = 0; j < mask.dims[1]; ++j) ones += m[b * mask.dims[1] + j] != 0;
        for (int64_t s = 0; s < seq; ++s) derived[(size_t)(b * seq + s)] = filled == 0 ? s : std::max<int64_t>(0, ones - seq + s);
      }
      pos.count = derived.size();
    }
    const auto* p = has_pos ? static_cast<const int64_t*>(pos.data) : derived.data();
    for (size_t i = 0; i < pos.count; ++i)
      if (p[i] < 0 || p[i] >= cos.dims[0])
        return Fail("position " + std::to_string(p[i]) + " is outside the rotary table of " + std::to_string(cos.dims[0]) + " rows");

    float *out = nullptr, *present_k = nullptr, *present_v = nullptr;
    W4A8_ORT_TRY(Output(ctx, 0, {batch, seq, qw}, &out));
    const int64_t present_rows = shared ? capacity : past + seq;
    W4A8_ORT_TRY(Output(ctx, 1, {batch, kv_heads_, present_rows, hs}, &present_k));
    W4A8_ORT_TRY(Output(ctx, 2, {batch, kv_heads_, present_rows, hs}, &present_v));
    if (batch == 0 || seq == 0 || hs == 0) return nullptr;

    cpu::AttentionArgs a;
    a.batch = (int32_t)batch;
    a.seq = (int32_t)seq;
    a.past = (int32_t)filled;
    a.capacity = (int32_t)capacity;
    a.heads = (int32_t)heads_;
    a.kv_heads = (int32_t)kv_heads_;
    a.head_size = (int32_t)hs;
    a.rope_rows = (int32_t)cos.dims[0];
    a.scale = scale_ > 0.0f ? scale_ : (float)(1.0 / std::sqrt((double)hs));
    a.rotary_interleaved = interleaved_;
    const auto* qd = static_cast<const float*>(q.data);
    a.q = qd;
    a.q_stride = q_width;
    a.k = has_k ? static_cast<const float*>(k.data) : qd + qw;
    a.v = has_k ? static_cast<const float*>(v.data) : qd + qw + kw;
    a.kv_stride = has_k ? kw : q_width;
    a.past_k = static_cast<const float*>(pk.data);
    a.past_v = static_cast<const float*>(pv.data);
    a.mask = static_cast<const int64_t*>(mask.data);
    a.positions = p;
    a.cos = static_cast<const float*>(cos.data);
    a.sin = static_cast<const float*>(sin.data);
    a.out = out;
    a.present_k = present_k;
    a.present_v = present_v;
    const Status s = cpu::CachedAttention(a);
    return s == Status::kOk ? nullptr : Fail(std::string("kernel failed: ") + StatusName(s));
  }

  int64_t heads_ = 0, kv_heads_ = 0;
  float scale_ = 0.0f;
  bool interleaved_ = true;
};

class RmsNormKernel : public KernelBase {
 public:
  explicit RmsNormKernel(const OrtApiView& api) : KernelBase(api, kRmsNormOpType) {}

  OrtStatus* Init(const OrtKernelInfo* info) {
    eps_ = FloatAttr(info, "epsilon", 1e-5f);
    if (!std::isfinite(eps_) || eps_ < 0.0f) return Fail("epsilon must be finite and >= 0");
    return nullptr;
  }

 private:
  // Y, [Sum] = RmsNorm(X, weight[, residual]): Sum = X + residual, Y = Sum normalized times weight.
  OrtStatus* Run(OrtKernelContext* ctx) override {
    TensorView x, w, r;
    bool has_r = false;
    W4A8_ORT_TRY(Input(ctx, 0, &x));
    W4A8_ORT_TRY(Input(ctx, 1, &w));
    W4A8_ORT_TRY(Input(ctx, 2, &r, &has_r));
    if (x.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || w.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || (has_r && r.type != x.type))
      return Fail("inputs must be fp32");
    if (x.dims.empty() || w.dims.size() != 1 || w.dims[0] != x.dims.back() || w.dims[0] < 1 || w.dims[0] > INT32_MAX)
      return Fail("X is " + DimsText(x.dims) + " and weight " + DimsText(w.dims) + "; weight must be [last dimension of X]");
    if (has_r && r.dims != x.dims) return Fail("residual is " + DimsText(r.dims) + "; it must have X's shape " + DimsText(x.dims));
    size_t outputs = 0;
    W4A8_ORT_TRY(api_.KernelContext_GetOutputCount(ctx, &outputs));
    if (outputs > 1 && !has_r) return Fail("the second output (X + residual) needs the residual input");
    float *y = nullptr, *sum = nullptr;
    W4A8_ORT_TRY(Output(ctx, 0, x.dims, &y));
    if (outputs > 1) W4A8_ORT_TRY(Output(ctx, 1, x.dims, &sum));
    const int32_t dim = (int32_t)w.dims[0];
    const Status s = cpu::RmsNorm(static_cast<const float*>(x.data), has_r ? static_cast<const float*>(r.data) : nullptr,
                                  static_cast<const float*>(w.data), (int64_t)(x.count / dim), dim, eps_, y, sum);
    return s == Status::kOk ? nullptr : Fail(std::string("kernel failed: ") + StatusName(s));
  }

  float eps_ = 1e-5f;
};

// ---- OrtCustomOp callbacks ---------------------------------------------------------------------
struct OpInfo {
  OrtCustomOp op;  // first member: ORT's callbacks get &op, cast back to OpInfo
  const char* name;
  size_t inputs, outputs;
  const ONNXTensorElementDataType* input_types;
  const bool* input_optional;
  const bool* output_optional;
};
const OpInfo& Info(const OrtCustomOp* op) { return *reinterpret_cast<const OpInfo*>(op); }

const char* OpName(const OrtCustomOp* op) { return Info(op).name; }
const char* OpProvider(const OrtCustomOp*) { return nullptr; }
ONNXTensorElementDataType OpInputType(const OrtCustomOp* op, size_t i) { return Info(op).input_types[i]; }
size_t OpInputCount(const OrtCustomOp* op) { return Info(op).inputs; }
ONNXTensorElementDataType OpOutputType(const OrtCustomOp*, size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
size_t OpOutputCount(const OrtCustomOp* op) { return Info(op).outputs; }
OrtCustomOpInputOutputCharacteristic OpInputCharacteristic(const OrtCustomOp* op, size_t i) {
  return Info(op).input_optional[i] ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}
OrtCustomOpInputOutputCharacteristic OpOutputCharacteristic(const OrtCustomOp* op, size_t i) {
  return Info(op).output_optional[i] ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}
OrtMemType OpInputMemoryType(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
int OpOne(const OrtCustomOp*) { return 1; }
int OpStartVersion(const OrtCustomOp*) { return 1; }
int OpEndVersion(const OrtCustomOp*) { return 2147483647; }

template <typename K>
OrtStatus* CreateKernel(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info, void** kernel) {
  const OrtApiView view = OrtApiView::From(api);
  try {
    auto k = std::make_unique<K>(view);
    if (OrtStatus* s = k->Init(info)) return s;
    *kernel = static_cast<KernelBase*>(k.release());
    return nullptr;
  } catch (const std::bad_alloc&) {
    return view.CreateStatus(ORT_FAIL, (std::string(Info(op).name) + ": out of memory").c_str());
  }
}
OrtStatus* OpCompute(void* kernel, OrtKernelContext* ctx) { return static_cast<KernelBase*>(kernel)->Compute(ctx); }
void OpDestroy(void* kernel) { delete static_cast<KernelBase*>(kernel); }

template <typename K>
OpInfo MakeOp(const char* name, size_t inputs, size_t outputs, const ONNXTensorElementDataType* types, const bool* in_opt,
              const bool* out_opt) {
  OpInfo info;
  std::memset(&info, 0, sizeof(info));
  info.name = name;
  info.inputs = inputs;
  info.outputs = outputs;
  info.input_types = types;
  info.input_optional = in_opt;
  info.output_optional = out_opt;
  OrtCustomOp& op = info.op;
  op.version = 16;  // CreateKernelV2 / KernelComputeV2 and the version range
  op.GetName = OpName;
  op.GetExecutionProviderType = OpProvider;
  op.GetInputType = OpInputType;
  op.GetInputTypeCount = OpInputCount;
  op.GetOutputType = OpOutputType;
  op.GetOutputTypeCount = OpOutputCount;
  op.KernelDestroy = OpDestroy;
  op.GetInputCharacteristic = OpInputCharacteristic;
  op.GetOutputCharacteristic = OpOutputCharacteristic;
  op.GetInputMemoryType = OpInputMemoryType;
  op.GetVariadicInputMinArity = OpOne;
  op.GetVariadicInputHomogeneity = OpOne;
  op.GetVariadicOutputMinArity = OpOne;
  op.GetVariadicOutputHomogeneity = OpOne;
  op.CreateKernelV2 = CreateKernel<K>;
  op.KernelComputeV2 = OpCompute;
  op.GetStartVersion = OpStartVersion;
  op.GetEndVersion = OpEndVersion;
  return info;
}

constexpr ONNXTensorElementDataType F = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, I64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
constexpr ONNXTensorElementDataType kAttentionInputs[] = {F, F, F, F, F, I64, I64, F, F};
constexpr bool kAttentionInputOptional[] = {false, true, true, false, false, false, true, false, false};
constexpr bool kAttentionOutputOptional[] = {false, false, false};
constexpr ONNXTensorElementDataType kRmsNormInputs[] = {F, F, F};
constexpr bool kRmsNormInputOptional[] = {false, false, true};
constexpr bool kRmsNormOutputOptional[] = {false, true};

}  // namespace

const OrtCustomOp* CachedAttentionOp() {
  static const OpInfo op = MakeOp<AttentionKernel>(kAttentionOpType, 9, 3, kAttentionInputs, kAttentionInputOptional, kAttentionOutputOptional);
  return &op.op;
}

const OrtCustomOp* RmsNormOp() {
  static const OpInfo op = MakeOp<RmsNormKernel>(kRmsNormOpType, 3, 2, kRmsNormInputs, kRmsNormInputOptional, kRmsNormOutputOptional);
  return &op.op;
}

}  // namespace w4a8::ort
