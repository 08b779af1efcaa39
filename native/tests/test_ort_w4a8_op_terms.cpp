// W4A8MatMul's correction terms (low rank U V, Kronecker sum) through a real ONNX Runtime session,
// against an independent float64 reference: the dense C = U V + sum_i A_i (x) B_i [K, N] is built
// explicitly and y = GemmW4A8Reference / GemmW4A16Reference (+bias) + x C. Odd shapes, fp32 and
// fp16 A (and fp32 A with fp16 factors), int8 / none activations, factors as constant initializers, as graph inputs fed per run
// (two adapters on one session, switched run to run), and as initializers overridable by a feed;
// the int8 low-rank form (formats.h Int8Rows) against its dequantized factors, and its refusals.
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <random>

#include "ort_test_util.h"
#include "test_check.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/ort_runtime.h"

using namespace w4a8;

namespace {

struct Shape { int32_t k1, k2, n1, n2, group, rank, terms, m; };

struct Adapter {
  int32_t rank = 0, terms = 0;
  std::vector<float> u, v, ka, kb;  // [K, r], [r, N], [R, k1, n1], [R, k2, n2]
};

std::vector<float> Uniform(size_t count, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> out(count);
  for (auto& f : out) f = d(rng);
  return out;
}

// Values exactly representable in fp16, so fp16 and fp32 models see the same factors.
void RoundToHalf(std::vector<float>* v) {
  std::vector<uint16_t> h(v->size());
  FloatToHalfArray(v->data(), h.data(), h.size());
  HalfToFloatArray(h.data(), v->data(), h.size());
}

Adapter RandomAdapter(const Shape& s, std::mt19937& rng) {
  const int32_t k = s.k1 * s.k2, n = s.n1 * s.n2;
  Adapter a;
  a.rank = s.rank;
  a.terms = s.terms;
  a.u = Uniform((size_t)k * s.rank, 0.1f, rng);
  a.v = Uniform((size_t)s.rank * n, 0.1f, rng);
  a.ka = Uniform((size_t)s.terms * s.k1 * s.n1, 0.2f, rng);
  a.kb = Uniform((size_t)s.terms * s.k2 * s.n2, 0.2f, rng);
  for (auto* f : {&a.u, &a.v, &a.ka, &a.kb}) RoundToHalf(f);
  return a;
}

// Dense C [K][N] in double: U V + sum_i kron(A_i, B_i) with C[(p, s)][(q, t)] = A[p][q] B[s][t].
std::vector<double> DenseCorrection(const Shape& s, const Adapter& a, bool lowrank, bool kron) {
  const int32_t k = s.k1 * s.k2, n = s.n1 * s.n2;
  std::vector<double> c((size_t)k * n, 0.0);
  if (lowrank)
    for (int32_t i = 0; i < k; ++i)
      for (int32_t j = 0; j < n; ++j)
        for (int32_t r = 0; r < a.rank; ++r) c[(size_t)i * n + j] += (double)a.u[(size_t)i * a.rank + r] * a.v[(size_t)r * n + j];
  if (kron)
    for (int32_t t = 0; t < a.terms; ++t)
      for (int32_t p = 0; p < s.k1; ++p)
        for (int32_t q = 0; q < s.n1; ++q)
          for (int32_t u = 0; u < s.k2; ++u)
            for (int32_t w = 0; w < s.n2; ++w)
              c[(size_t)(p * s.k2 + u) * n + q * s.n2 + w] += (double)a.ka[((size_t)t * s.k1 + p) * s.n1 + q] * a.kb[((size_t)t * s.k2 + u) * s.n2 + w];
  return c;
}

enum class Feed { kConstant, kGraphInput, kOverridable };
const char* FeedName(Feed f) { return f == Feed::kConstant ? "initializers" : f == Feed::kGraphInput ? "graph inputs" : "overridable initializers"; }

void WriteModel(const std::string& path, const test::RandomWeight& w, const Shape& s, const std::string& act, bool half, bool lowrank, bool kron,
                Feed feed, const Adapter& defaults, bool half_factors) {
  using test::Proto;
  const int ftype = half ? ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  const int factor_type = half_factors ? ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ftype;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  Proto graph, node;
  node.Str(1, "A").Str(1, "codes").Str(1, "scales").Str(1, w.zero_points.empty() ? "" : "zero_points").Str(1, "");
  node.Str(1, lowrank ? "U" : "").Str(1, lowrank ? "V" : "");
  if (kron) node.Str(1, "KA").Str(1, "KB");
  node.Str(2, "Y").Str(3, "w4a8_matmul").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  node.Msg(5, test::IntAttr("K", w.k)).Msg(5, test::IntAttr("N", w.n)).Msg(5, test::IntAttr("bits", 4)).Msg(5, test::IntAttr("block_size", w.group_size));
  node.Msg(5, test::StrAttr("weight_format", "int4")).Msg(5, test::StrAttr("activation_format", act));
  graph.Msg(1, node).Str(2, "w4a8_op_terms_test");
  graph.Msg(5, test::Initializer("codes", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {w.n, blocks, w.group_size / 2}, w.codes.data(), w.codes.size()));
  graph.Msg(5, test::Initializer("scales", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {(int64_t)w.scales.size()}, w.scales.data(), w.scales.size() * 4));
  if (!w.zero_points.empty())
    graph.Msg(5, test::Initializer("zero_points", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {(int64_t)w.zero_points.size()}, w.zero_points.data(), w.zero_points.size()));
  struct Factor { const char* name; std::vector<int64_t> dims; const std::vector<float>* values; };
  std::vector<Factor> factors;
  if (lowrank) {
    factors.push_back({"U", {w.k, s.rank}, &defaults.u});
    factors.push_back({"V", {s.rank, w.n}, &defaults.v});
  }
  if (kron) {
    factors.push_back({"KA", {s.terms, s.k1, s.n1}, &defaults.ka});
    factors.push_back({"KB", {s.terms, s.k2, s.n2}, &defaults.kb});
  }
  graph.Msg(11, test::ValueInfo("A", ftype, {"rows", std::to_string(w.k)}));
  for (const Factor& f : factors) {
    std::vector<std::string> dims;
    for (int64_t d : f.dims) dims.push_back(std::to_string(d));
    if (feed != Feed::kConstant) graph.Msg(11, test::ValueInfo(f.name, factor_type, dims));
    if (feed == Feed::kGraphInput) continue;
    if (factor_type == ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      std::vector<uint16_t> h(f.values->size());
      FloatToHalfArray(f.values->data(), h.data(), h.size());
      graph.Msg(5, test::Initializer(f.name, factor_type, f.dims, h.data(), h.size() * 2));
    } else {
      graph.Msg(5, test::Initializer(f.name, ftype, f.dims, f.values->data(), f.values->size() * 4));
    }
  }
  graph.Msg(12, test::ValueInfo("Y", ftype, {"rows", std::to_string(w.n)}));
  test::WriteGraphModel(path, graph);
}

// The int8 low-rank form (formats.h Int8Rows): inputs 5, 6 int8 [r, K] / [r, N], 9, 10 their row
// scales; as initializers, or (fed) as graph inputs.
struct Int8Factors {
  int32_t r = 0;
  std::vector<int8_t> ut, v;
  std::vector<float> us, vs;
  std::vector<float> u_deq, v_deq;  // U [K][r], V [r][N] dequantized, for the reference
};

Int8Factors RandomInt8Factors(int32_t k, int32_t r, int32_t n, std::mt19937& rng) {
  Int8Factors f;
  f.r = r;
  const std::vector<float> ut = Uniform((size_t)r * k, 0.1f, rng), v = Uniform((size_t)r * n, 0.1f, rng);
  f.ut.resize(ut.size());
  f.v.resize(v.size());
  f.us.resize(r);
  f.vs.resize(r);
  cpu::QuantizeInt8Rows(ut.data(), r, k, f.ut.data(), f.us.data());
  cpu::QuantizeInt8Rows(v.data(), r, n, f.v.data(), f.vs.data());
  f.u_deq.resize((size_t)k * r);
  f.v_deq.resize((size_t)r * n);
  for (int32_t c = 0; c < r; ++c) {
    for (int32_t i = 0; i < k; ++i) f.u_deq[(size_t)i * r + c] = Int8RowValue(f.ut[(size_t)c * k + i], f.us[c]);
    for (int32_t j = 0; j < n; ++j) f.v_deq[(size_t)c * n + j] = Int8RowValue(f.v[(size_t)c * n + j], f.vs[c]);
  }
  return f;
}

void WriteInt8Model(const std::string& path, const test::RandomWeight& w, const Int8Factors& f, bool fed, bool with_scales = true) {
  using test::Proto;
  const int ft = ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, i8 = ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  Proto graph, node;
  node.Str(1, "A").Str(1, "codes").Str(1, "scales").Str(1, w.zero_points.empty() ? "" : "zero_points").Str(1, "");
  node.Str(1, "U8").Str(1, "V8");
  if (with_scales) node.Str(1, "").Str(1, "").Str(1, "US").Str(1, "VS");
  node.Str(2, "Y").Str(3, "w4a8_matmul").Str(4, "W4A8MatMul").Str(7, "com.w4a8");
  node.Msg(5, test::IntAttr("K", w.k)).Msg(5, test::IntAttr("N", w.n)).Msg(5, test::IntAttr("bits", 4)).Msg(5, test::IntAttr("block_size", w.group_size));
  node.Msg(5, test::StrAttr("weight_format", "int4")).Msg(5, test::StrAttr("activation_format", "int8"));
  graph.Msg(1, node).Str(2, "w4a8_op_int8_factors_test");
  graph.Msg(5, test::Initializer("codes", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {w.n, blocks, w.group_size / 2}, w.codes.data(), w.codes.size()));
  graph.Msg(5, test::Initializer("scales", ft, {(int64_t)w.scales.size()}, w.scales.data(), w.scales.size() * 4));
  if (!w.zero_points.empty())
    graph.Msg(5, test::Initializer("zero_points", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {(int64_t)w.zero_points.size()}, w.zero_points.data(), w.zero_points.size()));
  graph.Msg(11, test::ValueInfo("A", ft, {"rows", std::to_string(w.k)}));
  const std::string r = std::to_string(f.r);
  if (fed) {
    graph.Msg(11, test::ValueInfo("U8", i8, {r, std::to_string(w.k)})).Msg(11, test::ValueInfo("V8", i8, {r, std::to_string(w.n)}));
    if (with_scales) graph.Msg(11, test::ValueInfo("US", ft, {r})).Msg(11, test::ValueInfo("VS", ft, {r}));
  } else {
    graph.Msg(5, test::Initializer("U8", i8, {f.r, w.k}, f.ut.data(), f.ut.size()));
    graph.Msg(5, test::Initializer("V8", i8, {f.r, w.n}, f.v.data(), f.v.size()));
    graph.Msg(5, test::Initializer("US", ft, {f.r}, f.us.data(), f.us.size() * 4));
    graph.Msg(5, test::Initializer("VS", ft, {f.r}, f.vs.data(), f.vs.size() * 4));
  }
  graph.Msg(12, test::ValueInfo("Y", ft, {"rows", std::to_string(w.n)}));
  test::WriteGraphModel(path, graph);
}

struct Blob {
  std::vector<float> f;
  std::vector<uint16_t> h;
  ort::InputTensor Tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values, bool half) {
    if (half) {
      h.resize(values.size());
      FloatToHalfArray(values.data(), h.data(), h.size());
      return {name, ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, dims, (void*)h.data(), h.size() * 2};
    }
    f = values;
    return {name, ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, dims, (void*)f.data(), f.size() * 4};
  }
};

}  // namespace

int main() {
  const std::string lib = test::FindOrtLibrary();
  if (lib.empty()) {
    std::printf("SKIP: no libonnxruntime.so.1 (run npm ci to install onnxruntime-node, or set W4A8_ORT_LIBRARY)\n");
    return 77;
  }
  std::string error;
  const ort::Runtime* rt = ort::OpenRuntime(lib, &error);
  if (!rt) {
    std::printf("FAIL: %s\n", error.c_str());
    return 1;
  }
  const unsigned seed = std::getenv("W4A8_TEST_SEED") ? (unsigned)std::strtoul(std::getenv("W4A8_TEST_SEED"), nullptr, 10) : std::random_device{}();
  std::printf("ONNX Runtime %s from %s; seed %u\n", rt->version.c_str(), lib.c_str(), seed);
  std::mt19937 rng(seed);
  const std::string dir = "/tmp/w4a8_ort_op_terms_test_" + std::to_string(getpid());
  std::system(("mkdir -p " + dir).c_str());

  // K = k1 k2, N = n1 n2: odd sizes, a prime K (k1 = 1), one term / rank 1, more terms than rows.
  const Shape shapes[] = {{5, 8, 3, 7, 16, 3, 2, 3}, {4, 25, 3, 11, 32, 5, 1, 1}, {1, 257, 7, 10, 64, 1, 3, 6}, {16, 16, 4, 12, 128, 17, 4, 33}};
  int cases = 0;
  for (const Shape& sh : shapes) {
    const int32_t k = sh.k1 * sh.k2, n = sh.n1 * sh.n2;
    for (const char* act : {"int8", "none"}) {
      for (int half = 0; half < 3; ++half) {  // 0 fp32, 1 fp16, 2 fp32 A with fp16 factors
        const bool half_a = half == 1, half_factors = half >= 1;
        for (Feed feed : {Feed::kConstant, Feed::kGraphInput, Feed::kOverridable}) {
          for (int terms = 1; terms < 4; ++terms) {  // 1 low rank, 2 Kronecker, 3 both
            const bool lowrank = terms & 1, kron = terms & 2;
            test::RandomWeight w(test::WeightKind::kInt4Asymmetric, n, k, sh.group, rng);
            // Two adapters: the first is the model's default (initializers), the second only fed.
            const Adapter adapters[2] = {RandomAdapter(sh, rng), RandomAdapter(sh, rng)};
            const std::string path = dir + "/op.onnx";
            WriteModel(path, w, sh, act, half_a, lowrank, kron, feed, adapters[0], half_factors);
            ort::SessionConfig config;
            config.intra_op_threads = 2;
            auto session = ort::Session::Create(*rt, path, config, &error);
            const std::string label = std::string(act) + (half_a ? " fp16" : half_factors ? " fp32 (fp16 factors)" : " fp32") + (lowrank ? " lowrank" : "") + (kron ? " kron" : "") + " as " +
                                      FeedName(feed) + " K=" + std::to_string(k) + " N=" + std::to_string(n) + " M=" + std::to_string(sh.m);
            CHECK(session != nullptr, "%s: session: %s", label.c_str(), error.c_str());
            if (!session) continue;
            // Constant: one run with the built-in factors. Graph inputs: both adapters, switched run to
            // run on the same session. Overridable: the default, then the second adapter fed, then the default again.
            std::vector<int> runs = feed == Feed::kConstant ? std::vector<int>{0} : feed == Feed::kGraphInput ? std::vector<int>{0, 1, 0} : std::vector<int>{-1, 1, -1};
            for (int which : runs) {
              const Adapter& ad = adapters[which < 0 ? 0 : which];
              std::vector<float> x = test::RandomActivations(sh.m, k, rng);
              Blob bx, bu, bv, ba, bb;
              std::vector<ort::InputTensor> feeds{bx.Tensor("A", {sh.m, k}, x, half_a)};
              if (half_a) HalfToFloatArray(bx.h.data(), x.data(), x.size());
              if (feed != Feed::kConstant && which >= 0) {
                if (lowrank) {
                  feeds.push_back(bu.Tensor("U", {k, sh.rank}, ad.u, half_factors));
                  feeds.push_back(bv.Tensor("V", {sh.rank, n}, ad.v, half_factors));
                }
                if (kron) {
                  feeds.push_back(ba.Tensor("KA", {sh.terms, sh.k1, sh.n1}, ad.ka, half_factors));
                  feeds.push_back(bb.Tensor("KB", {sh.terms, sh.k2, sh.n2}, ad.kb, half_factors));
                }
              }
              std::vector<ort::OutputTensor> out;
              const bool ok = session->Run(feeds, {"Y"}, &out, &error);
              const std::string run_label = label + " adapter " + std::to_string(which < 0 ? 0 : which);
              CHECK(ok, "%s: run: %s", run_label.c_str(), error.c_str());
              if (!ok) continue;
              std::vector<float> y((size_t)sh.m * n);
              if (half_a) HalfToFloatArray(reinterpret_cast<const uint16_t*>(out[0].bytes.data()), y.data(), y.size());
              else std::memcpy(y.data(), out[0].bytes.data(), y.size() * 4);
              // Reference: quantized product (exact twin), plus x C in double.
              std::vector<float> base((size_t)sh.m * n);
              cpu::GemmArgs a;
              a.m = sh.m;
              a.x = x.data();
              a.y = base.data();
              a.act = cpu::ActQuant::kPerToken;
              const Status rs = std::string(act) == "int8" ? cpu::GemmW4A8Reference(w.view(), a) : cpu::GemmW4A16Reference(w.view(), a);
              CHECK(rs == Status::kOk, "%s: reference failed", run_label.c_str());
              const std::vector<double> c = DenseCorrection(sh, ad, lowrank, kron);
              double cmax = 0, wmax = 0;
              for (double v : c) cmax = std::fmax(cmax, std::fabs(v));
              for (float sc : w.scales) wmax = std::fmax(wmax, 15.0 * std::fabs(sc));
              bool good = true;
              for (int32_t r = 0; r < sh.m && good; ++r) {
                double l1 = 0, mag = 1e-6;
                for (int32_t i = 0; i < k; ++i) l1 += std::fabs(x[(size_t)r * k + i]);
                std::vector<double> ref(n);
                for (int32_t j = 0; j < n; ++j) {
                  double s = base[(size_t)r * n + j];
                  for (int32_t i = 0; i < k; ++i) s += (double)x[(size_t)r * k + i] * c[(size_t)i * n + j];
                  ref[j] = s;
                  mag = std::fmax(mag, std::fabs(s));
                }
                // fp32: rounding of the terms' sums, bounded by ||x||_1 (max|C| + max|w|); fp16: output rounding.
                const double tol = half_a ? 2e-3 * std::fmax(mag, 1e-3 * l1 * (cmax + wmax)) : 2e-5 * std::fmax(mag, l1 * (cmax + wmax));
                for (int32_t j = 0; j < n && good; ++j) {
                  good = std::fabs(y[(size_t)r * n + j] - ref[j]) <= tol;
                  CHECK(good, "%s: y[%d][%d] = %.7g, reference %.7g (tolerance %.3g)", run_label.c_str(), r, j, y[(size_t)r * n + j], ref[j], tol);
                }
              }
              // The correction is really there: without it the result differs by more than the tolerance.
              double moved = 0;
              for (size_t i = 0; i < y.size(); ++i) moved = std::fmax(moved, std::fabs(y[i] - base[i]));
              CHECK(moved > 1e-3, "%s: the correction left the output unchanged (max change %.3g)", run_label.c_str(), moved);
              ++cases;
            }
          }
        }
      }
    }
  }

  // int8 low-rank factors (formats.h Int8Rows), constant and fed, M from 1 to 33 (1 to 4-token tiles):
  // y = GemmW4A8Reference then LowRankAddInt8Reference bit for bit (the op runs the fused
  // GemmW4A8LowRankInt8), and within the int8 term's rounding of x U V with the dequantized factors.
  for (const auto& [k, n, r, group] : std::vector<std::array<int32_t, 4>>{{40, 21, 3, 16}, {257, 70, 17, 64}, {96, 130, 1, 32}}) {
    for (bool fed : {false, true}) {
      test::RandomWeight w(test::WeightKind::kInt4Asymmetric, n, k, group, rng);
      const Int8Factors f = RandomInt8Factors(k, r, n, rng);
      const std::string path = dir + "/int8.onnx";
      WriteInt8Model(path, w, f, fed);
      ort::SessionConfig config;
      config.intra_op_threads = 2;
      auto session = ort::Session::Create(*rt, path, config, &error);
      const std::string label = std::string("int8 low-rank factors as ") + (fed ? "graph inputs" : "initializers") + " K=" + std::to_string(k) +
                                " N=" + std::to_string(n) + " r=" + std::to_string(r);
      CHECK(session != nullptr, "%s: session: %s", label.c_str(), error.c_str());
      if (!session) continue;
      for (int32_t m : {1, 2, 5, 9, 33}) {
        std::vector<float> x = test::RandomActivations(m, k, rng);
        Blob bx;
        std::vector<ort::InputTensor> feeds{bx.Tensor("A", {m, k}, x, false)};
        std::vector<int8_t> ut = f.ut, v = f.v;
        std::vector<float> us = f.us, vs = f.vs;
        if (fed) {
          feeds.push_back({"U8", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, {r, k}, (void*)ut.data(), ut.size()});
          feeds.push_back({"V8", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, {r, n}, (void*)v.data(), v.size()});
          feeds.push_back({"US", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {r}, (void*)us.data(), us.size() * 4});
          feeds.push_back({"VS", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {r}, (void*)vs.data(), vs.size() * 4});
        }
        std::vector<ort::OutputTensor> out;
        const bool ok = session->Run(feeds, {"Y"}, &out, &error);
        CHECK(ok, "%s M=%d: run: %s", label.c_str(), m, error.c_str());
        if (!ok) continue;
        std::vector<float> y((size_t)m * n), base((size_t)m * n);
        std::memcpy(y.data(), out[0].bytes.data(), y.size() * 4);
        cpu::GemmArgs a;
        a.m = m;
        a.x = x.data();
        a.y = base.data();
        a.act = cpu::ActQuant::kPerToken;
        CHECK(cpu::GemmW4A8Reference(w.view(), a) == Status::kOk, "%s: reference failed", label.c_str());
        std::vector<float> ref = base;
        const cpu::LowRankInt8Term lr{k, r, n, f.ut.data(), f.us.data(), f.v.data(), f.vs.data()};
        CHECK(cpu::LowRankAddInt8Reference(lr, m, x.data(), ref.data()) == Status::kOk, "%s: term reference failed", label.c_str());
        const int64_t at = test::FirstBitDifference(y, ref);
        CHECK(at < 0, "%s M=%d: y[%lld] = %.9g, reference %.9g", label.c_str(), m, (long long)at, at < 0 ? 0.0 : y[at], at < 0 ? 0.0 : ref[at]);
        // Against float64 on the int8 activations (x fake-quantized per token, as the GEMM sees it): the
        // only other rounding is that of t = x U to int8 per token, at most half a step of t per rank
        // component, times |V|.
        double worst_excess = 0, moved = 0, term_max = 0;
        std::vector<double> xt((size_t)r);
        for (int32_t t = 0; t < m; ++t) {
          float amax = 0.f;
          for (int32_t i = 0; i < k; ++i) amax = AbsMaxStep(amax, x[(size_t)t * k + i]);
          const TokenScale xs = MakeTokenScale(amax, kInt8Max);
          double tmax = 0;
          for (int32_t c = 0; c < r; ++c) {
            double xu = 0;
            for (int32_t i = 0; i < k; ++i) xu += (double)FakeQuantInt8(x[(size_t)t * k + i], xs) * f.u_deq[(size_t)i * r + c];
            xt[c] = xu;
            tmax = std::fmax(tmax, std::fabs(xu * f.vs[c]));  // the requantized value is t * vs (cpu_adapters.h)
          }
          for (int32_t j = 0; j < n; ++j) {
            double s = base[(size_t)t * n + j], bound = 1e-6 * (std::fabs(s) + 1e-3);
            for (int32_t c = 0; c < r; ++c) {
              s += xt[c] * f.v_deq[(size_t)c * n + j];
              bound += 0.5 * (tmax / 127) * 1.001 * std::abs((int)f.v[(size_t)c * n + j]);
            }
            worst_excess = std::fmax(worst_excess, std::fabs(y[(size_t)t * n + j] - s) / bound);
            moved = std::fmax(moved, std::fabs(y[(size_t)t * n + j] - base[(size_t)t * n + j]));
            term_max = std::fmax(term_max, std::fabs(s - base[(size_t)t * n + j]));
          }
        }
        CHECK(worst_excess <= 1.0, "%s M=%d: off the float64 term on int8 activations by %.3g of the rounding bound", label.c_str(), m, worst_excess);
        // The term moves the output by about its own size (rank 1 and one token can make it small:
        // an absolute threshold failed about one run in twenty).
        CHECK(term_max < 1e-6 || moved > 0.5 * term_max, "%s M=%d: the correction moved the output by %.3g, the term is %.3g", label.c_str(), m,
              moved, term_max);
        ++cases;
      }
    }
  }
  // int8 factors without their scales are refused with a message.
  {
    test::RandomWeight w(test::WeightKind::kInt4Symmetric, 21, 40, 16, rng);
    const Int8Factors f = RandomInt8Factors(40, 3, 21, rng);
    const std::string path = dir + "/int8_fed.onnx";
    WriteInt8Model(path, w, f, true, false);
    ort::SessionConfig config;
    auto session = ort::Session::Create(*rt, path, config, &error);
    CHECK(session != nullptr, "int8 refusal model: session: %s", error.c_str());
    if (session) {
      std::vector<float> x = test::RandomActivations(1, 40, rng);
      std::vector<int8_t> ut = f.ut, v = f.v;
      Blob bx;
      std::vector<ort::InputTensor> feeds{bx.Tensor("A", {1, 40}, x, false), {"U8", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, {3, 40}, (void*)ut.data(), ut.size()},
                                          {"V8", ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, {3, 21}, (void*)v.data(), v.size()}};
      std::vector<ort::OutputTensor> out;
      CHECK(!session->Run(feeds, {"Y"}, &out, &error) && error.find("row scales") != std::string::npos, "int8 factors without scales: %s", error.c_str());
      std::printf("int8 factors without scales refused: %s\n", error.c_str());
    }
  }

  // Bad shapes are refused with a message, not a crash: U of the wrong K, and half a pair.
  {
    const Shape sh{5, 8, 3, 7, 16, 3, 2, 2};
    test::RandomWeight w(test::WeightKind::kInt4Symmetric, 21, 40, 16, rng);
    const Adapter ad = RandomAdapter(sh, rng);
    const std::string path = dir + "/bad.onnx";
    WriteModel(path, w, sh, "int8", false, true, true, Feed::kGraphInput, ad, false);
    ort::SessionConfig config;
    auto session = ort::Session::Create(*rt, path, config, &error);
    CHECK(session != nullptr, "bad-shape model: session: %s", error.c_str());
    if (session) {
      std::vector<float> x = test::RandomActivations(2, 40, rng), wrong_u((size_t)39 * 3, 0.f);
      Blob bx, bu, bv, ba, bb;
      std::vector<ort::InputTensor> feeds{bx.Tensor("A", {2, 40}, x, false), bu.Tensor("U", {39, 3}, wrong_u, false), bv.Tensor("V", {3, 21}, ad.v, false),
                                          ba.Tensor("KA", {2, 5, 3}, ad.ka, false), bb.Tensor("KB", {2, 8, 7}, ad.kb, false)};
      std::vector<ort::OutputTensor> out;
      // ORT checks declared input shapes first; either way the run fails with a message.
      CHECK(!session->Run(feeds, {"Y"}, &out, &error) && !error.empty(), "a U of the wrong shape was accepted");
      std::printf("wrong U refused: %s\n", error.c_str());
    }
  }
  std::system(("rm -rf " + dir).c_str());
  std::printf("%d runs\n", cases);
  return Finish();
}
