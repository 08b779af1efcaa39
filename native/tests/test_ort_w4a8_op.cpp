// W4A8MatMul through a real ONNX Runtime session (onnxruntime-node's library, opened with dlopen)
// against the scalar references, over odd shapes: fp32 and fp16 A, with and without bias and zero
// points, int4 and fp4 weights, int8 / fp8 / none activations, batch > 1.
//   int8: bit-exact with GemmW4A8Reference (per-token activation scale) for fp32 A;
//   none: GemmW4A16Reference (float64 sums) within fp32 rounding; fp8: E4M3 fake quant + W4A16.
#include <unistd.h>

#include <cmath>
#include <random>

#include "ort_test_util.h"
#include "test_check.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/ort_runtime.h"

using namespace w4a8;

namespace {

std::vector<float> Reference(const test::RandomWeight& w, const std::string& act, const std::vector<float>& x, int32_t m,
                             const std::vector<float>* bias) {
  std::vector<float> y((size_t)m * w.n);
  cpu::GemmArgs a;
  a.m = m;
  a.x = x.data();
  a.bias = bias ? bias->data() : nullptr;
  a.y = y.data();
  a.act = cpu::ActQuant::kPerToken;
  if (act == "int8") {
    CHECK(cpu::GemmW4A8Reference(w.view(), a) == Status::kOk, "reference failed");
  } else {
    std::vector<float> xq = x;
    if (act == "fp8") {
      for (int32_t r = 0; r < m; ++r) {
        float amax = 0;
        for (int32_t i = 0; i < w.k; ++i) amax = std::fmax(amax, std::fabs(x[(size_t)r * w.k + i]));
        const TokenScale ts = MakeTokenScale(amax, kE4M3Max);
        for (int32_t i = 0; i < w.k; ++i) xq[(size_t)r * w.k + i] = FakeQuantE4M3(x[(size_t)r * w.k + i], ts);
      }
    }
    a.x = xq.data();
    CHECK(cpu::GemmW4A16Reference(w.view(), a) == Status::kOk, "reference failed");
  }
  return y;
}

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
  const unsigned seed = std::random_device{}();
  std::printf("ONNX Runtime %s from %s; seed %u\n", rt->version.c_str(), lib.c_str(), seed);
  std::mt19937 rng(seed);
  const std::string dir = "/tmp/w4a8_ort_op_test_" + std::to_string(getpid());
  std::system(("mkdir -p " + dir).c_str());

  struct Shape { int32_t n, k, group; int batch, seq; };
  const Shape shapes[] = {{1, 16, 16, 1, 1}, {17, 40, 16, 2, 3}, {33, 100, 32, 3, 1}, {70, 257, 64, 1, 5}, {5, 300, 128, 2, 2}, {48, 256, 256, 4, 1}};
  const test::WeightKind kinds[] = {test::WeightKind::kInt4Symmetric, test::WeightKind::kInt4Asymmetric, test::WeightKind::kFp4};
  int cases = 0;
  for (const Shape& sh : shapes) {
    for (test::WeightKind kind : kinds) {
      for (const char* act : {"int8", "fp8", "none"}) {
        for (int half = 0; half < 2; ++half) {
          for (int with_bias = 0; with_bias < 2; ++with_bias) {
            test::RandomWeight w(kind, sh.n, sh.k, sh.group, rng);
            std::vector<float> bias = test::RandomBias(sh.n, rng);
            test::OpModelSpec spec{&w, act, half == 1, with_bias ? &bias : nullptr, 2};
            const std::string path = dir + "/op.onnx";
            test::WriteOpModel(path, spec);
            ort::SessionConfig config;
            config.intra_op_threads = 1;
            auto session = ort::Session::Create(*rt, path, config, &error);
            const std::string label = std::string(test::WeightKindName(kind)) + " " + act + (half ? " fp16" : " fp32") +
                                      (with_bias ? " bias" : "") + " N=" + std::to_string(sh.n) + " K=" + std::to_string(sh.k) +
                                      " g" + std::to_string(sh.group) + " batch " + std::to_string(sh.batch) + "x" + std::to_string(sh.seq);
            CHECK(session != nullptr, "%s: session: %s", label.c_str(), error.c_str());
            if (!session) continue;
            const int32_t m = sh.batch * sh.seq;
            std::vector<float> x = test::RandomActivations(m, sh.k, rng);
            std::vector<uint16_t> xh;
            if (half) {  // the reference sees exactly the values the session gets
              xh.resize(x.size());
              FloatToHalfArray(x.data(), xh.data(), x.size());
              HalfToFloatArray(xh.data(), x.data(), x.size());
            }
            std::vector<float> bias_seen = bias;
            if (half) {
              std::vector<uint16_t> bh(bias.size());
              FloatToHalfArray(bias.data(), bh.data(), bh.size());
              HalfToFloatArray(bh.data(), bias_seen.data(), bh.size());
            }
            ort::InputTensor in{"A", half ? ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                {sh.batch, sh.seq, sh.k}, half ? (void*)xh.data() : (void*)x.data(), x.size() * (half ? 2 : 4)};
            std::vector<ort::OutputTensor> out;
            const bool ok = session->Run({in}, {"Y"}, &out, &error);
            CHECK(ok, "%s: run: %s", label.c_str(), error.c_str());
            if (!ok) continue;
            CHECK(out[0].dims == (std::vector<int64_t>{sh.batch, sh.seq, sh.n}), "%s: output shape", label.c_str());
            std::vector<float> y((size_t)m * sh.n);
            if (half) HalfToFloatArray(reinterpret_cast<const uint16_t*>(out[0].bytes.data()), y.data(), y.size());
            else std::memcpy(y.data(), out[0].bytes.data(), y.size() * 4);
            const std::vector<float> ref = Reference(w, act, x, m, with_bias ? &bias_seen : nullptr);
            if (!half && std::string(act) == "int8") {
              const int64_t diff = test::FirstBitDifference(y, ref);
              CHECK(diff < 0, "%s: element %lld is %.9g, reference %.9g (must be bit-exact)", label.c_str(), (long long)diff,
                    diff >= 0 ? y[diff] : 0.0, diff >= 0 ? ref[diff] : 0.0);
            } else {
              // fp32 rounding (W4A16) or fp16 output rounding. Rounding error scales with the sum of
              // |x_k * w_kj|, not with the result, which cancellation can make tiny (N = 1 rows): bound
              // that sum by ||x_row||_1 * max|w| (|q - zero point| <= 15 codes of the largest scale).
              const double tol = half ? 2e-3 : 1e-5;
              double wmax = 0;
              for (float sc : w.scales) wmax = std::fmax(wmax, 15.0 * std::fabs(sc));
              for (int32_t r = 0; r < m; ++r) {
                double mag = 1e-6, l1 = 0;
                for (int32_t j = 0; j < sh.n; ++j) mag = std::fmax(mag, std::fabs(ref[(size_t)r * sh.n + j]));
                for (int32_t kk = 0; kk < sh.k; ++kk) l1 += std::fabs(x[(size_t)r * sh.k + kk]);
                if (!half) mag = std::fmax(mag, l1 * wmax);
                for (int32_t j = 0; j < sh.n; ++j) {
                  const size_t i = (size_t)r * sh.n + j;
                  CHECK(std::fabs(y[i] - ref[i]) <= tol * mag, "%s: y[%d][%d] = %.7g, reference %.7g", label.c_str(), r, j, y[i], ref[i]);
                }
              }
            }
            ++cases;
          }
        }
      }
    }
  }
  // activation "swiglu" (a fused gate-and-up MLP weight): Y = silu(P[:, :N/2]) * P[:, N/2:] of the
  // int8 product P, which is bit-exact with the reference, so only the SwiGLU's own rounding remains.
  for (const Shape& sh : {Shape{2, 16, 16, 1, 1}, Shape{70, 257, 64, 1, 5}, Shape{48, 256, 256, 4, 1}}) {
    for (int half = 0; half < 2; ++half) {
      test::RandomWeight w(test::WeightKind::kInt4Asymmetric, sh.n, sh.k, sh.group, rng);
      test::OpModelSpec spec{&w, "int8", half == 1, nullptr, 2, "swiglu"};
      const std::string path = dir + "/swiglu.onnx";
      test::WriteOpModel(path, spec);
      ort::SessionConfig config;
      config.intra_op_threads = 2;
      auto session = ort::Session::Create(*rt, path, config, &error);
      const std::string label = std::string("swiglu") + (half ? " fp16" : " fp32") + " N=" + std::to_string(sh.n) + " K=" + std::to_string(sh.k);
      CHECK(session != nullptr, "%s: session: %s", label.c_str(), error.c_str());
      if (!session) continue;
      const int32_t m = sh.batch * sh.seq, f = sh.n / 2;
      std::vector<float> x = test::RandomActivations(m, sh.k, rng);
      std::vector<uint16_t> xh(x.size());
      if (half) {
        FloatToHalfArray(x.data(), xh.data(), x.size());
        HalfToFloatArray(xh.data(), x.data(), x.size());
      }
      ort::InputTensor in{"A", half ? ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ort::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                          {sh.batch, sh.seq, sh.k}, half ? (void*)xh.data() : (void*)x.data(), x.size() * (half ? 2 : 4)};
      std::vector<ort::OutputTensor> out;
      const bool ok = session->Run({in}, {"Y"}, &out, &error);
      CHECK(ok, "%s: run: %s", label.c_str(), error.c_str());
      if (!ok) continue;
      CHECK(out[0].dims == (std::vector<int64_t>{sh.batch, sh.seq, f}), "%s: output shape", label.c_str());
      std::vector<float> y((size_t)m * f);
      if (half) HalfToFloatArray(reinterpret_cast<const uint16_t*>(out[0].bytes.data()), y.data(), y.size());
      else std::memcpy(y.data(), out[0].bytes.data(), y.size() * 4);
      const std::vector<float> p = Reference(w, "int8", x, m, nullptr);
      for (int32_t r = 0; r < m; ++r)
        for (int32_t j = 0; j < f; ++j) {
          const double g = p[(size_t)r * sh.n + j], u = p[(size_t)r * sh.n + f + j];
          const double want = g * u / (1.0 + std::exp(-g));
          const double tol = (half ? 1e-3 : 1e-5) * std::fmax(1e-3, std::fabs(want));
          CHECK(std::fabs(y[(size_t)r * f + j] - want) <= tol, "%s: y[%d][%d] = %.7g, expected %.7g", label.c_str(), r, j,
                y[(size_t)r * f + j], want);
        }
      ++cases;
    }
  }
  std::system(("rm -rf " + dir).c_str());
  std::printf("%d cases\n", cases);
  return Finish();
}
