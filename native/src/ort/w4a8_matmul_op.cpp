// W4A8MatMul (ort_op.h): the OrtCustomOp callbacks and the kernel object.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/decoder_ops.h"
#include "w4a8/formats.h"
#include "w4a8/half.h"
#include "w4a8/ort_op.h"
#include "op_support.h"

namespace w4a8::ort {
namespace {

enum class ActFormat { kInt8, kFp8, kNone };

// Optional inputs after bias (ort_op.h).
constexpr size_t kLowRankU = 5, kLowRankV = 6, kKronA = 7, kKronB = 8, kLowRankUScale = 9, kLowRankVScale = 10,
                 kInputCount = 11;

struct LowRankFactors {
  int32_t r = 0;
  std::vector<float> u, v;  // [K][r], [r][N] converted to fp32 (empty when read in place)
  const float* u_at = nullptr;  // the values used: u / v, or a fed fp32 tensor read in place
  const float* v_at = nullptr;
  // int8 factors (formats.h Int8Rows): ut [r][K], v [r][N] and their row scales; copies for
  // constants, fed tensors read in place.
  bool int8 = false;
  std::vector<int8_t> ut8, v8;
  std::vector<float> us, vs;
  const int8_t* ut8_at = nullptr;
  const int8_t* v8_at = nullptr;
  const float* us_at = nullptr;
  const float* vs_at = nullptr;
};
// The Kronecker terms: a in the kernel's orientation [R][n1][k1]; b as the input holds it,
// [R][k2][n2], which is the B^T the kernel wants (KronTerms::b_t), so it is never transposed.
struct KronFactors {
  int32_t r = 0, k1 = 0, n1 = 0, k2 = 0, n2 = 0;
  std::vector<float> a, b_t;
  cpu::KronTerms terms() const { return cpu::KronTerms{r, n1, k1, n2, k2, a.data(), nullptr, b_t.data()}; }
};

// The kernels' tasks run on the session's intra-op threads (KernelContext_ParallelFor): one set of
// threads for the whole graph, sized and configured by whoever made the session (our sessions, or a
// serving stack loading libw4a8_ort.so). W4A8_OP_THREADS=pool runs them on our own pool instead
// (cpu::SetNumThreads), as before; docs/ARCHITECTURE.md has the measurements.
bool UseOrtThreads() {
  static const bool ort = [] {
    const char* v = std::getenv("W4A8_OP_THREADS");
    return !(v && std::string(v) == "pool");
  }();
  return ort;
}

class Kernel {
 public:
  explicit Kernel(const OrtApiView& api) : api_(api) {}

  OrtStatus* Init(const OrtKernelInfo* info) {
    int64_t k = 0, n = 0, bits = 4, block = 0;
    W4A8_ORT_TRY(api_.KernelInfoGetAttribute_int64(info, "K", &k));
    W4A8_ORT_TRY(api_.KernelInfoGetAttribute_int64(info, "N", &n));
    W4A8_ORT_TRY(api_.KernelInfoGetAttribute_int64(info, "block_size", &block));
    if (OrtStatus* s = api_.KernelInfoGetAttribute_int64(info, "bits", &bits)) api_.ReleaseStatus(s);
    std::string wf = StringAttr(info, "weight_format", "int4");
    std::string af = StringAttr(info, "activation_format", "int8");
    const std::string activation = StringAttr(info, "activation", "none");
    if (activation != "none" && activation != "swiglu") return Fail("activation \"" + activation + "\"; expected none or swiglu");
    swiglu_ = activation == "swiglu";
    if (swiglu_ && n % 2 != 0) return Fail("activation swiglu needs an even N (gate and up halves), got " + std::to_string(n));
    if (bits != 4) return Fail("bits is " + std::to_string(bits) + "; only 4 is supported");
    if (k < 1 || n < 1 || k > INT32_MAX || n > INT32_MAX) return Fail("K and N must be positive 32-bit integers");
    if (block < kMinGroupSize || block > kMaxGroupSize || (block & (block - 1)))
      return Fail("block_size " + std::to_string(block) + " is not a power of two in 16..256");
    if (wf != "int4" && wf != "fp4") return Fail("weight_format \"" + wf + "\"; expected int4 or fp4");
    act_ = af == "int8" ? ActFormat::kInt8 : af == "fp8" ? ActFormat::kFp8 : af == "none" ? ActFormat::kNone : ActFormat(-1);
    if ((int)act_ < 0) return Fail("activation_format \"" + af + "\"; expected int8, fp8 or none");

    size_t inputs = 0;
    W4A8_ORT_TRY(api_.KernelInfo_GetInputCount(info, &inputs));
    TensorView codes, scales, zps, bias;
    bool has_codes = false, has_scales = false, has_zp = false;
    W4A8_ORT_TRY(Constant(info, 1, &codes, &has_codes));
    W4A8_ORT_TRY(Constant(info, 2, &scales, &has_scales));
    if (inputs > 3) W4A8_ORT_TRY(Constant(info, 3, &zps, &has_zp));
    if (!has_codes || !has_scales)
      return Fail("codes and scales must be initializers (constant inputs) so the weight is prepacked once");
    const int32_t kk = (int32_t)k, nn = (int32_t)n, bs = (int32_t)block;
    if (codes.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 || codes.count != CodeBytes(nn, kk, bs))
      return Fail("codes are " + DimsText(codes.dims) + "; expected uint8 [" + std::to_string(n) + ", " +
                  std::to_string(BlocksPerRow(kk, bs)) + ", " + std::to_string(bs / 2) + "]");
    if (scales.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || scales.count != ScaleCount(nn, kk, bs))
      return Fail("scales are " + DimsText(scales.dims) + "; expected float [" + std::to_string(ScaleCount(nn, kk, bs)) + "]");
    if (has_zp && (zps.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 || zps.count != ZeroPointBytes(nn, kk, bs)))
      return Fail("zero_points are " + DimsText(zps.dims) + "; expected uint8 [" + std::to_string(ZeroPointBytes(nn, kk, bs)) + "]");
    weight_ = QuantizedWeight{wf == "fp4" ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4, nn, kk, bs,
                              static_cast<const uint8_t*>(codes.data), static_cast<const float*>(scales.data),
                              has_zp ? static_cast<const uint8_t*>(zps.data) : nullptr};
    if (cpu::ValidateQuantizedWeight(weight_) != Status::kOk) return Fail("the weight arrays are not a valid canonical weight");
    {  // every activation format runs on the packed weight (int8: GemmW4A8; fp8, none: GemmW4A16Packed)
      const Status s = StatusFromExceptions([&] { return cpu::Prepack(weight_, cpu::DefaultIsa(), &packed_); });
      if (s != Status::kOk) return Fail(std::string("prepacking failed: ") + StatusName(s));
      // From here on only the packed copy is read. ORT keeps its initializer (a custom op has no way
      // to hand it back, unlike its built-in kernels' PrePack), but it memory-maps large external
      // initializers: dropping those clean file pages leaves one copy resident.
      ReleasePages(codes.data, codes.count);
      ReleasePages(scales.data, scales.count * sizeof(float));
    }
    // A constant bias is converted to fp32 once.
    bool has_bias = false;
    if (inputs > 4) W4A8_ORT_TRY(Constant(info, 4, &bias, &has_bias));
    if (has_bias) W4A8_ORT_TRY(ToFloat(bias, &bias_f32_, "bias"));
    constant_bias_ = has_bias;
    // Constant correction factors are converted once; factors fed per run (an adapter chosen per
    // request: graph inputs, or initializers that are also graph inputs) are converted in Compute.
    if (inputs > kLowRankU) {
      TensorView u, v, us, vs;
      bool has_u = false, has_v = false, has_us = false, has_vs = false;
      W4A8_ORT_TRY(Constant(info, kLowRankU, &u, &has_u));
      if (inputs > kLowRankV) W4A8_ORT_TRY(Constant(info, kLowRankV, &v, &has_v));
      if (inputs > kLowRankUScale) W4A8_ORT_TRY(Constant(info, kLowRankUScale, &us, &has_us));
      if (inputs > kLowRankVScale) W4A8_ORT_TRY(Constant(info, kLowRankVScale, &vs, &has_vs));
      const bool int8 = has_u && u.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
      if (has_u && has_v && (!int8 || (has_us && has_vs))) {
        W4A8_ORT_TRY(LowRankFrom(u, v, int8 ? &us : nullptr, int8 ? &vs : nullptr, &const_lowrank_, false));
        constant_lowrank_ = true;
      }
    }
    if (inputs > kKronA) {
      TensorView a, b;
      bool has_a = false, has_b = false;
      W4A8_ORT_TRY(Constant(info, kKronA, &a, &has_a));
      if (inputs > kKronB) W4A8_ORT_TRY(Constant(info, kKronB, &b, &has_b));
      if (has_a && has_b) {
        W4A8_ORT_TRY(KronFrom(a, b, &const_kron_));
        constant_kron_ = true;
      }
    }
    return nullptr;
  }

  OrtStatus* Compute(OrtKernelContext* ctx) {
    try {
      if (!UseOrtThreads()) return ComputeUnguarded(ctx);
      OrtThreads threads{&api_, ctx};
      cpu::ScopedTaskRunner runner(&OrtThreads::Run, &threads);
      return ComputeUnguarded(ctx);
    } catch (const std::bad_alloc&) {
      return api_.CreateStatus(ORT_FAIL, "W4A8MatMul: out of memory");
    } catch (...) {
      return api_.CreateStatus(ORT_FAIL, "W4A8MatMul: unexpected exception");
    }
  }

 private:
  OrtStatus* ComputeUnguarded(OrtKernelContext* ctx) {
    size_t inputs = 0;
    W4A8_ORT_TRY(api_.KernelContext_GetInputCount(ctx, &inputs));
    const OrtValue* a_value = nullptr;
    W4A8_ORT_TRY(api_.KernelContext_GetInput(ctx, 0, &a_value));
    TensorView a;
    W4A8_ORT_TRY(Describe(api_, a_value, &a));
    const bool half = a.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    if (!half && a.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) return Fail("A must be float or float16");
    if (a.dims.empty() || a.dims.back() != weight_.k)
      return Fail("A is " + DimsText(a.dims) + "; its last dimension must be K = " + std::to_string(weight_.k));
    const size_t m = a.count / (size_t)weight_.k;
    std::vector<int64_t> ydims = a.dims;
    ydims.back() = swiglu_ ? weight_.n / 2 : weight_.n;
    OrtValue* y_value = nullptr;
    W4A8_ORT_TRY(api_.KernelContext_GetOutput(ctx, 0, ydims.data(), ydims.size(), &y_value));
    void* y_raw = nullptr;
    W4A8_ORT_TRY(api_.GetTensorMutableData(y_value, &y_raw));
    if (m == 0) return nullptr;
    if (m > (size_t)INT32_MAX) return Fail("A has too many rows");

    const float* bias = nullptr;
    std::vector<float> bias_now;
    if (constant_bias_) {
      bias = bias_f32_.data();
    } else if (inputs > 4) {
      const OrtValue* b = nullptr;
      W4A8_ORT_TRY(api_.KernelContext_GetInput(ctx, 4, &b));
      if (b) {
        TensorView bv;
        W4A8_ORT_TRY(Describe(api_, b, &bv));
        W4A8_ORT_TRY(ToFloat(bv, &bias_now, "bias"));
        bias = bias_now.data();
      }
    }

    // The correction terms (optional inputs 5..8), constant or fed with this run.
    LowRankFactors lowrank_now;
    KronFactors kron_now;
    const LowRankFactors* lowrank = constant_lowrank_ ? &const_lowrank_ : nullptr;
    const KronFactors* kron = constant_kron_ ? &const_kron_ : nullptr;
    if (!lowrank) {
      TensorView u, v, us, vs;
      bool has_u = false, has_v = false, has_us = false, has_vs = false;
      W4A8_ORT_TRY(RunInput(ctx, inputs, kLowRankU, &u, &has_u));
      W4A8_ORT_TRY(RunInput(ctx, inputs, kLowRankV, &v, &has_v));
      W4A8_ORT_TRY(RunInput(ctx, inputs, kLowRankUScale, &us, &has_us));
      W4A8_ORT_TRY(RunInput(ctx, inputs, kLowRankVScale, &vs, &has_vs));
      if (has_u != has_v) return Fail("lowrank_u and lowrank_v come together: one is missing");
      if (has_u) {
        const bool int8 = u.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
        W4A8_ORT_TRY(LowRankFrom(u, v, int8 && has_us ? &us : nullptr, int8 && has_vs ? &vs : nullptr, &lowrank_now, true));
        lowrank = &lowrank_now;
      }
    }
    if (!kron) {
      TensorView ka, kb;
      bool has_a = false, has_b = false;
      W4A8_ORT_TRY(RunInput(ctx, inputs, kKronA, &ka, &has_a));
      W4A8_ORT_TRY(RunInput(ctx, inputs, kKronB, &kb, &has_b));
      if (has_a != has_b) return Fail("kron_a and kron_b come together: one is missing");
      if (has_a) {
        W4A8_ORT_TRY(KronFrom(ka, kb, &kron_now));
        kron = &kron_now;
      }
    }

    const size_t xk = m * (size_t)weight_.k, yn = m * (size_t)weight_.n;
    // Scratch arrays, each written whole before it is read: left uninitialized (a prefill's gate|up
    // product is tens of MB that zero-filling would write once more).
    std::unique_ptr<float[]> x_buf, x_fp8, y_buf;
    const float* x = static_cast<const float*>(a.data);
    float* y = static_cast<float*>(y_raw);
    // swiglu: the product [m, N] goes to a buffer, the output is its [m, N / 2] SwiGLU.
    std::unique_ptr<float[]> y_full;
    if (swiglu_) {
      y_full.reset(new float[yn]);
      y = y_full.get();
    }
    if (half) {
      x_buf.reset(new float[xk]);
      HalfToFloatArray(static_cast<const uint16_t*>(a.data), x_buf.get(), xk);
      x = x_buf.get();
      y_buf.reset(new float[swiglu_ ? yn / 2 : yn]);
      if (!swiglu_) y = y_buf.get();
    }
    // The corrections read the activation before its quantization (the sim export's branch does);
    // the int8 low-rank term quantizes it per token (cpu_adapters.h), with int8 activations in the GEMM.
    const float* x_float = x;
    if (act_ == ActFormat::kFp8) {
      x_fp8.reset(new float[xk]);
      FakeQuantFp8Rows(x, m, x_fp8.get());
      x = x_fp8.get();
    }
    cpu::GemmArgs args;
    args.m = (int32_t)m;
    args.x = x;
    args.bias = bias;
    args.y = y;
    args.act = cpu::ActQuant::kPerToken;
    // Int8 factors with int8 activations: one call, the term on the GEMM's quantized activations.
    const bool fused_int8 = lowrank && lowrank->int8 && act_ == ActFormat::kInt8;
    const Status s = StatusFromExceptions([&] {
      if (fused_int8) {
        const cpu::LowRankInt8Term lr{weight_.k, lowrank->r, weight_.n, lowrank->ut8_at, lowrank->us_at, lowrank->v8_at, lowrank->vs_at};
        return cpu::GemmW4A8LowRankInt8(*packed_, lr, args);
      }
      return act_ == ActFormat::kInt8 ? cpu::GemmW4A8(*packed_, args) : cpu::GemmW4A16Packed(*packed_, cpu::DefaultIsa(), args);
    });
    if (s != Status::kOk) return Fail(std::string(fused_int8 ? "kernel (with the int8 low-rank term) failed: " : "kernel failed: ") + StatusName(s));
    if (lowrank && !fused_int8) {
      const Status ls = StatusFromExceptions([&] {
        if (lowrank->int8) {
          const cpu::LowRankInt8Term lr{weight_.k, lowrank->r, weight_.n, lowrank->ut8_at, lowrank->us_at, lowrank->v8_at, lowrank->vs_at};
          return cpu::LowRankAddInt8(lr, (int32_t)m, x_float, y, cpu::DefaultIsa());
        }
        const cpu::LowRankTerm lr{weight_.k, lowrank->r, weight_.n, lowrank->u_at, lowrank->v_at};
        return cpu::LowRankAdd(lr, (int32_t)m, x_float, y, cpu::DefaultIsa());
      });
      if (ls != Status::kOk) return Fail(std::string("low-rank term failed: ") + StatusName(ls));
    }
    if (kron) {
      const Status ks = StatusFromExceptions([&] { return cpu::KroneckerAdapterAdd(kron->terms(), (int32_t)m, x_float, y); });
      if (ks != Status::kOk) return Fail(std::string("Kronecker term failed: ") + StatusName(ks));
    }
    if (swiglu_) {
      float* dst = half ? y_buf.get() : static_cast<float*>(y_raw);
      const Status ss = cpu::SwiGlu(y, (int64_t)m, weight_.n / 2, dst);
      if (ss != Status::kOk) return Fail(std::string("SwiGLU failed: ") + StatusName(ss));
      y = dst;
    }
    if (half) FloatToHalfArray(y, static_cast<uint16_t*>(y_raw), swiglu_ ? yn / 2 : yn);
    return nullptr;
  }

  // Input `index` of this run; *found is false when the node lacks it or it is not fed.
  OrtStatus* RunInput(OrtKernelContext* ctx, size_t inputs, size_t index, TensorView* out, bool* found) const {
    *found = false;
    if (index >= inputs) return nullptr;
    const OrtValue* v = nullptr;
    W4A8_ORT_TRY(api_.KernelContext_GetInput(ctx, index, &v));
    if (!v) return nullptr;
    *found = true;
    return Describe(api_, v, out);
  }

  // Float or float16 values as fp32, `count` of them.
  OrtStatus* Floats(const TensorView& t, std::vector<float>* out, const char* what) const {
    out->resize(t.count);
    if (t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      if (t.count) std::memcpy(out->data(), t.data, t.count * sizeof(float));
    } else if (t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      HalfToFloatArray(static_cast<const uint16_t*>(t.data), out->data(), t.count);
    } else {
      return Fail(std::string(what) + " must be float or float16");
    }
    for (float f : *out)
      if (!std::isfinite(f)) return Fail(std::string(what) + " holds a value that is not finite");
    return nullptr;
  }

  // int8 lowrank_u [r, K] (U transposed) and lowrank_v [r, N] with row scales [r] each (formats.h Int8Rows).
  OrtStatus* LowRankInt8From(const TensorView& u, const TensorView& v, const TensorView* us, const TensorView* vs,
                             LowRankFactors* out, bool in_place) const {
    if (v.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) return Fail("lowrank_u is int8, so lowrank_v must be int8 too");
    if (!us || !vs) return Fail("int8 lowrank_u / lowrank_v need their row scales (inputs 9 and 10)");
    if (u.dims.size() != 2 || v.dims.size() != 2 || u.dims[1] != weight_.k || v.dims[1] != weight_.n || u.dims[0] != v.dims[0] ||
        u.dims[0] < 1 || u.dims[0] > INT32_MAX)
      return Fail("int8 lowrank_u is " + DimsText(u.dims) + " and lowrank_v " + DimsText(v.dims) + "; expected [r, K = " +
                  std::to_string(weight_.k) + "] and [r, N = " + std::to_string(weight_.n) + "] with r >= 1");
    const int64_t r = u.dims[0];
    for (const TensorView* t : {us, vs})
      if (t->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || t->count != (size_t)r)
        return Fail("lowrank row scales are " + DimsText(t->dims) + "; expected float [r = " + std::to_string(r) + "]");
    for (const TensorView* t : {us, vs})
      for (size_t i = 0; i < t->count; ++i) {
        const float f = static_cast<const float*>(t->data)[i];
        if (!std::isfinite(f) || f < 0.f) return Fail("lowrank row scales must be finite and >= 0");
      }
    out->r = (int32_t)r;
    out->int8 = true;
    if (in_place) {
      out->ut8_at = static_cast<const int8_t*>(u.data);
      out->v8_at = static_cast<const int8_t*>(v.data);
      out->us_at = static_cast<const float*>(us->data);
      out->vs_at = static_cast<const float*>(vs->data);
      return nullptr;
    }
    const auto* ub = static_cast<const int8_t*>(u.data);
    const auto* vb = static_cast<const int8_t*>(v.data);
    out->ut8.assign(ub, ub + u.count);
    out->v8.assign(vb, vb + v.count);
    out->us.assign(static_cast<const float*>(us->data), static_cast<const float*>(us->data) + r);
    out->vs.assign(static_cast<const float*>(vs->data), static_cast<const float*>(vs->data) + r);
    out->ut8_at = out->ut8.data();
    out->v8_at = out->v8.data();
    out->us_at = out->us.data();
    out->vs_at = out->vs.data();
    return nullptr;
  }

  // lowrank_u [K, r] and lowrank_v [r, N] (float / float16), or the int8 form with row scales.
  OrtStatus* LowRankFrom(const TensorView& u, const TensorView& v, const TensorView* us, const TensorView* vs,
                         LowRankFactors* out, bool in_place) const {
    if (u.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) return LowRankInt8From(u, v, us, vs, out, in_place);
    if (u.dims.size() != 2 || v.dims.size() != 2 || u.dims[0] != weight_.k || v.dims[1] != weight_.n ||
        u.dims[1] != v.dims[0] || u.dims[1] < 1 || u.dims[1] > INT32_MAX)
      return Fail("lowrank_u is " + DimsText(u.dims) + " and lowrank_v " + DimsText(v.dims) + "; expected [K = " +
                  std::to_string(weight_.k) + ", r] and [r, N = " + std::to_string(weight_.n) + "] with r >= 1");
    out->r = (int32_t)u.dims[1];
    // fp32 factors fed with a run are read in place (no copy per run); fp16 ones are converted.
    const auto take = [&](const TensorView& t, std::vector<float>* buf, const float** at, const char* what) -> OrtStatus* {
      if (in_place && t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        *at = static_cast<const float*>(t.data);
        return nullptr;
      }
      W4A8_ORT_TRY(Floats(t, buf, what));
      *at = buf->data();
      return nullptr;
    };
    W4A8_ORT_TRY(take(u, &out->u, &out->u_at, "lowrank_u"));
    return take(v, &out->v, &out->v_at, "lowrank_v");
  }

  // kron_a [R, k1, n1] and kron_b [R, k2, n2] with k1 * k2 = K, n1 * n2 = N: the term x (sum_i
  // A_i (x) B_i), the export's layout ([K, N] like a MatMul weight). The kernel (cpu_adapters.h)
  // takes A in the [N, K] orientation (stored transposed) and B in this one (as b_t).
  OrtStatus* KronFrom(const TensorView& a, const TensorView& b, KronFactors* out) const {
    const bool ranks = a.dims.size() == 3 && b.dims.size() == 3;
    if (!ranks || a.dims[0] != b.dims[0] || a.dims[0] < 1 || a.dims[1] < 1 || a.dims[2] < 1 || b.dims[1] < 1 || b.dims[2] < 1 ||
        a.dims[0] > INT32_MAX || a.dims[1] * b.dims[1] != weight_.k || a.dims[2] * b.dims[2] != weight_.n)
      return Fail("kron_a is " + DimsText(a.dims) + " and kron_b " + DimsText(b.dims) + "; expected [R, k1, n1] and [R, k2, n2] with k1 * k2 = K = " +
                  std::to_string(weight_.k) + " and n1 * n2 = N = " + std::to_string(weight_.n));
    std::vector<float> af, bf;
    W4A8_ORT_TRY(Floats(a, &af, "kron_a"));
    W4A8_ORT_TRY(Floats(b, &bf, "kron_b"));
    const int32_t r = (int32_t)a.dims[0], k1 = (int32_t)a.dims[1], n1 = (int32_t)a.dims[2], k2 = (int32_t)b.dims[1], n2 = (int32_t)b.dims[2];
    out->r = r;
    out->k1 = k1;
    out->n1 = n1;
    out->k2 = k2;
    out->n2 = n2;
    out->a.resize(af.size());
    for (int32_t i = 0; i < r; ++i)
      for (int32_t p = 0; p < k1; ++p)
        for (int32_t q = 0; q < n1; ++q) out->a[((size_t)i * n1 + q) * k1 + p] = af[((size_t)i * k1 + p) * n1 + q];
    out->b_t = std::move(bf);
    return nullptr;
  }

  OrtStatus* Fail(const std::string& msg) const {
    return api_.CreateStatus(ORT_INVALID_ARGUMENT, ("W4A8MatMul: " + msg).c_str());
  }

  std::string StringAttr(const OrtKernelInfo* info, const char* name, const char* fallback) const {
    size_t size = 0;
    if (OrtStatus* s = api_.KernelInfoGetAttribute_string(info, name, nullptr, &size)) {
      api_.ReleaseStatus(s);
      if (size == 0) return fallback;
    }
    if (size == 0) return fallback;
    std::string out(size, '\0');
    if (OrtStatus* s = api_.KernelInfoGetAttribute_string(info, name, &out[0], &size)) {
      api_.ReleaseStatus(s);
      return fallback;
    }
    out.resize(std::strlen(out.c_str()));
    return out;
  }

  OrtStatus* Constant(const OrtKernelInfo* info, size_t index, TensorView* out, bool* found) const {
    int is_constant = 0;
    const OrtValue* v = nullptr;
    *found = false;
    W4A8_ORT_TRY(api_.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &v));
    if (!is_constant || !v) return nullptr;
    *found = true;
    return Describe(api_, v, out);
  }

  OrtStatus* ToFloat(const TensorView& t, std::vector<float>* out, const char* what) const {
    if ((int64_t)t.count != weight_.n) return Fail(std::string(what) + " has " + std::to_string(t.count) + " values; expected N = " + std::to_string(weight_.n));
    out->resize(t.count);
    if (t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      std::memcpy(out->data(), t.data, t.count * sizeof(float));
    } else if (t.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      HalfToFloatArray(static_cast<const uint16_t*>(t.data), out->data(), t.count);
    } else {
      return Fail(std::string(what) + " must be float or float16");
    }
    return nullptr;
  }

  // Asks the kernel to reclaim the whole pages inside [p, p + bytes). MADV_PAGEOUT never changes
  // contents (file pages are read again on access, anonymous ones go to swap or stay), so it is safe
  // whatever memory ORT handed us; it frees memory only for file-backed (memory-mapped) data.
  static void ReleasePages(const void* p, size_t bytes) {
#ifdef MADV_PAGEOUT
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t begin = ((uintptr_t)p + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)p + bytes) & ~(page - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_PAGEOUT);
#else
    (void)p;
    (void)bytes;
#endif
  }

  // Per-token E4M3 fake quantization (act_quant_def.h), the sim export's fp8 activation step.
  void FakeQuantFp8Rows(const float* x, size_t m, float* out) const {
    const size_t k = (size_t)weight_.k;
    for (size_t r = 0; r < m; ++r) {
      const float* row = x + r * k;
      float amax = 0.0f;
      for (size_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(row[i]));
      const TokenScale ts = MakeTokenScale(amax, kE4M3Max);
      for (size_t i = 0; i < k; ++i) out[r * k + i] = FakeQuantE4M3(row[i], ts);
    }
  }

  OrtApiView api_;
  ActFormat act_ = ActFormat::kInt8;
  QuantizedWeight weight_{};
  std::unique_ptr<cpu::PackedWeight> packed_;
  std::vector<float> bias_f32_;
  bool constant_bias_ = false;
  bool swiglu_ = false;  // attribute activation "swiglu": Y = silu(P[:, :N/2]) * P[:, N/2:] of the product P
  LowRankFactors const_lowrank_;
  KronFactors const_kron_;
  bool constant_lowrank_ = false, constant_kron_ = false;
};

// ---- OrtCustomOp callbacks ---------------------------------------------------------------------
const char* OpName(const OrtCustomOp*) { return kOpType; }
const char* OpProvider(const OrtCustomOp*) { return nullptr; }  // CPU execution provider
// One op definition per float type (ORT merges same-named ops into one schema whose type
// constraint lists both): A, bias and Y share the type, the weight arrays are fixed.
struct TypedOp {
  OrtCustomOp op;  // first member: ORT's callbacks get &op, cast back to TypedOp
  ONNXTensorElementDataType float_type;
};
ONNXTensorElementDataType FloatTypeOf(const OrtCustomOp* op) { return reinterpret_cast<const TypedOp*>(op)->float_type; }
ONNXTensorElementDataType OpInputType(const OrtCustomOp* op, size_t i) {
  if (i == 1 || i == 3) return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  if (i == 2) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  // Correction factors: float or float16 whatever A is (fp16 factors beside an fp32 model need no
  // Cast), or int8 low-rank factors with float row scales; UNDEFINED lets ORT accept any type, and
  // the kernel refuses the others.
  if (i >= kLowRankU) return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  return FloatTypeOf(op);
}
size_t OpInputCount(const OrtCustomOp*) { return kInputCount; }
ONNXTensorElementDataType OpOutputType(const OrtCustomOp* op, size_t) { return FloatTypeOf(op); }
size_t OpOutputCount(const OrtCustomOp*) { return 1; }
OrtCustomOpInputOutputCharacteristic OpInputCharacteristic(const OrtCustomOp*, size_t i) {
  return i >= 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}
OrtCustomOpInputOutputCharacteristic OpOutputCharacteristic(const OrtCustomOp*, size_t) { return INPUT_OUTPUT_REQUIRED; }
OrtMemType OpInputMemoryType(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
int OpOne(const OrtCustomOp*) { return 1; }
int OpStartVersion(const OrtCustomOp*) { return 1; }
int OpEndVersion(const OrtCustomOp*) { return 2147483647; }

OrtStatus* OpCreateKernelV2(const OrtCustomOp*, const OrtApi* api, const OrtKernelInfo* info, void** kernel) {
  const OrtApiView view = OrtApiView::From(api);
  try {
    auto k = std::make_unique<Kernel>(view);
    if (OrtStatus* s = k->Init(info)) return s;
    *kernel = k.release();
    return nullptr;
  } catch (const std::bad_alloc&) {
    return view.CreateStatus(ORT_FAIL, "W4A8MatMul: out of memory while prepacking the weight");
  }
}
OrtStatus* OpComputeV2(void* kernel, OrtKernelContext* ctx) { return static_cast<Kernel*>(kernel)->Compute(ctx); }
void OpDestroy(void* kernel) { delete static_cast<Kernel*>(kernel); }

TypedOp MakeOp(ONNXTensorElementDataType float_type) {
  TypedOp typed;
  std::memset(&typed, 0, sizeof(typed));
  typed.float_type = float_type;
  OrtCustomOp& op = typed.op;
  // Version 16 makes ORT read CreateKernelV2/KernelComputeV2 and the version range; later fields stay null.
  op.version = 16;
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
  op.CreateKernelV2 = OpCreateKernelV2;
  op.KernelComputeV2 = OpComputeV2;
  op.GetStartVersion = OpStartVersion;
  op.GetEndVersion = OpEndVersion;
  return typed;
}

}  // namespace

const OrtCustomOp* W4A8MatMulOp(bool float16) {
  static const TypedOp f32 = MakeOp(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  static const TypedOp f16 = MakeOp(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16);
  return float16 ? &f16.op : &f32.op;
}

OrtStatus* AddW4A8Domain(const OrtApi* api, OrtSessionOptions* options) {
  const OrtApiView a = OrtApiView::From(api);
  // One domain object per process, created on first use; ORT keeps a pointer to it in every
  // session options object it is added to.
  static std::mutex mu;
  static OrtCustomOpDomain* domain = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (!domain) {
    OrtCustomOpDomain* d = nullptr;
    W4A8_ORT_TRY(a.CreateCustomOpDomain(kOpDomain, &d));
    OrtStatus* s = a.CustomOpDomain_Add(d, W4A8MatMulOp(false));
    if (!s) s = a.CustomOpDomain_Add(d, W4A8MatMulOp(true));
    if (!s) s = a.CustomOpDomain_Add(d, CachedAttentionOp());
    if (!s) s = a.CustomOpDomain_Add(d, RmsNormOp());
    if (s) {
      a.ReleaseCustomOpDomain(d);
      return s;
    }
    domain = d;
  }
  return a.AddCustomOpDomain(options, domain);
}

}  // namespace w4a8::ort
