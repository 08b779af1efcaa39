// W4A8 GEMM on the GPU against a float64 CPU reference of the SAME quantized operands (the int8
// activations and scales the GPU quantizer produced, checked bit-exact against the CPU twin first):
// the error measured is the kernel's, not quantization's. Fresh random inputs every run (seed printed),
// outputs poisoned with NaN before each launch, odd shapes and every group size, then big shapes.
#include <chrono>

#include "cuda_test_common.cuh"
#include "w4a8/cuda_bits.h"
#include "w4a8/half.h"

using namespace w4a8;
using namespace w4a8::cudatest;

namespace {

constexpr double kTolerance = 3e-3;
int g_cases = 0, g_failures = 0;
double g_worst = 0;

const char* FormatName(WeightFormat f, bool asym) {
  return f == WeightFormat::kFp4E2M1 ? "fp4" : (asym ? "int4-asym" : "int4-sym");
}

void RunCase(std::mt19937& rng, WeightFormat fmt, bool asym, int32_t m, int32_t n, int32_t k, int32_t group,
             cuda::DType x_type, cuda::DType y_type, bool split = true) {
  ++g_cases;
  RandomWeight rw(fmt, asym, n, k, group, rng);
  cuda::DeviceWeight dw;
  STATUS_OK(cuda::UploadWeight(rw.w, &dw));

  // Activations with a few outlier channels, as in LLMs; bf16 inputs are the bf16-rounded values.
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> xf((size_t)m * k);
  std::vector<uint16_t> xb(xf.size());
  const int32_t outlier = (int32_t)(rng() % k);
  for (size_t i = 0; i < xf.size(); ++i) {
    float v = u(rng) * ((int32_t)(i % k) == outlier ? 20.0f : 1.0f);
    if (x_type == cuda::DType::kBfloat16) {
      xb[i] = FloatToBf16(v);
      v = Bf16ToFloat(xb[i]);
    }
    xf[i] = v;
  }
  DeviceArray<uint8_t> d_x(xf.size() * (x_type == cuda::DType::kBfloat16 ? 2 : 4));
  d_x.Upload(x_type == cuda::DType::kBfloat16 ? reinterpret_cast<const uint8_t*>(xb.data())
                                              : reinterpret_cast<const uint8_t*>(xf.data()));
  const int32_t ldq = cuda::Int8ActivationStride(k);
  DeviceArray<int8_t> d_q((size_t)m * ldq);
  DeviceArray<float> d_s(m);
  CUDA_OK(cudaMemset(d_q.ptr, 0x55, d_q.count));
  d_s.Poison();
  STATUS_OK(cuda::QuantizeActivationsInt8(d_x.ptr, x_type, m, k, d_q.ptr, ldq, d_s.ptr, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<int8_t> q(d_q.count);
  std::vector<float> s(m);
  d_q.Download(q.data());
  d_s.Download(s.data());

  // The quantizer must equal its CPU twin exactly, padding included.
  size_t quant_bad = 0;
  for (int32_t i = 0; i < m; ++i) {
    float amax = 0;
    for (int32_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(xf[(size_t)i * k + j]));
    const TokenScale ts = MakeTokenScale(amax, kInt8Max);
    if (s[i] != ts.scale) ++quant_bad;
    for (int32_t j = 0; j < ldq; ++j) {
      const int8_t want = j < k ? QuantizeInt8(xf[(size_t)i * k + j], ts.inverse) : 0;
      if (q[(size_t)i * ldq + j] != want) ++quant_bad;
    }
  }

  const size_t out_bytes = (size_t)m * n * (y_type == cuda::DType::kFloat32 ? 4 : 2);
  DeviceArray<uint8_t> d_y(out_bytes);
  d_y.Poison();
  // Split-K partial sums: poisoned too, so a partial that is read but never written shows up as NaN.
  const size_t ws_bytes = split ? cuda::GemmW4A8WorkspaceBytes(m, dw) : 0;
  DeviceArray<uint8_t> d_ws(ws_bytes);
  d_ws.Poison();
  STATUS_OK(cuda::GemmW4A8(d_q.ptr, ldq, d_s.ptr, m, dw, d_y.ptr, y_type, split ? d_ws.ptr : nullptr, ws_bytes, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> raw(out_bytes);
  d_y.Download(raw.data());
  std::vector<float> y((size_t)m * n);
  for (size_t i = 0; i < y.size(); ++i) {
    if (y_type == cuda::DType::kFloat32) {
      std::memcpy(&y[i], raw.data() + 4 * i, 4);
    } else {
      uint16_t b;
      std::memcpy(&b, raw.data() + 2 * i, 2);
      y[i] = Bf16BitsToFloat(b);
    }
  }

  std::vector<double> xq((size_t)m * k), row_scale(m);
  for (int32_t i = 0; i < m; ++i) {
    row_scale[i] = s[i];
    for (int32_t j = 0; j < k; ++j) xq[(size_t)i * k + j] = q[(size_t)i * ldq + j];
  }
  const std::vector<double> ref = ReferenceGemm(rw.w, m, xq, row_scale);
  const ErrorStats e = Compare(y, ref);
  g_worst = std::max(g_worst, std::max(e.rel_l2, e.max_rel));
  const bool ok = e.Pass(kTolerance) && quant_bad == 0;
  if (!ok || n * (int64_t)k >= (1 << 24)) {
    std::printf("%s %s m=%d n=%d k=%d g=%d x=%s y=%s split-K workspace %zu B: rel_l2 %.2e max_rel %.2e nonfinite %zu quant_mismatch %zu\n",
                ok ? "ok  " : "FAIL", FormatName(fmt, asym), m, n, k, group,
                x_type == cuda::DType::kBfloat16 ? "bf16" : "f32", y_type == cuda::DType::kBfloat16 ? "bf16" : "f32",
                ws_bytes, e.rel_l2, e.max_rel, e.nonfinite, quant_bad);
  }
  if (!ok) ++g_failures;
  cuda::FreeWeight(&dw);
}

void TestInvalidArguments() {
  cuda::DeviceWeight empty;
  int8_t* bogus = reinterpret_cast<int8_t*>(16);
  const bool ok = cuda::GemmW4A8(nullptr, 64, nullptr, 1, empty, nullptr, cuda::DType::kFloat32, nullptr, 0, nullptr) ==
                      Status::kInvalidArgument &&
                  cuda::GemmW4A8(bogus, 64, reinterpret_cast<float*>(16), 0, empty, bogus, cuda::DType::kFloat32,
                                 nullptr, 0, nullptr) == Status::kInvalidArgument;
  if (!ok) {
    std::puts("FAIL invalid arguments were not refused");
    ++g_failures;
  }
}

}  // namespace

int main() {
  SkipUnlessHopper();
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const auto t0 = std::chrono::steady_clock::now();
  TestInvalidArguments();

  const struct { WeightFormat f; bool asym; } formats[] = {
      {WeightFormat::kInt4, true}, {WeightFormat::kInt4, false}, {WeightFormat::kFp4E2M1, false}};
  const int32_t groups[] = {16, 32, 64, 128, 256};
  // Every m in 1..17 on odd shapes (n, k not tile multiples): the BM=16 and BM=64 tiles and their edges,
  // unsplit (k = 160 is 3 tiles) and split-K (k = 1000: 16 tiles in splits of 2, some inside a group).
  for (const auto& f : formats)
    for (int32_t g : groups)
      for (int32_t m = 1; m <= 17; ++m) {
        RunCase(rng, f.f, f.asym, m, 72, 160, g, cuda::DType::kFloat32, cuda::DType::kFloat32);
        RunCase(rng, f.f, f.asym, m, 72, 1000, g, cuda::DType::kFloat32, cuda::DType::kFloat32);
      }
  // The same without a workspace (no split) must give the same quality.
  for (int32_t m : {1, 9, 17}) RunCase(rng, WeightFormat::kInt4, true, m, 72, 1000, 128, cuda::DType::kFloat32, cuda::DType::kFloat32, false);
  const int32_t shapes[][2] = {{130, 300}, {256, 1000}, {520, 64}, {8, 40}};
  for (const auto& f : formats)
    for (int32_t g : groups)
      for (const auto& sh : shapes)
        for (int32_t m : {3, 33, 100}) RunCase(rng, f.f, f.asym, m, sh[0], sh[1], g, cuda::DType::kFloat32, cuda::DType::kFloat32);
  // bf16 activations and outputs.
  for (int32_t m : {1, 7, 16, 17, 70})
    RunCase(rng, WeightFormat::kInt4, true, m, 200, 512, 128, cuda::DType::kBfloat16, cuda::DType::kBfloat16);
  RunCase(rng, WeightFormat::kFp4E2M1, false, 9, 72, 160, 32, cuda::DType::kBfloat16, cuda::DType::kFloat32);
  // Big shapes once each (the BM=128 tile needs >= one block per SM: 32 n-tiles x 5 m-tiles).
  RunCase(rng, WeightFormat::kInt4, true, 600, 4096, 4096, 128, cuda::DType::kBfloat16, cuda::DType::kBfloat16);
  RunCase(rng, WeightFormat::kInt4, false, 16, 4096, 4096, 128, cuda::DType::kFloat32, cuda::DType::kFloat32);
  RunCase(rng, WeightFormat::kInt4, true, 17, 28672, 8192, 128, cuda::DType::kBfloat16, cuda::DType::kFloat32);
  RunCase(rng, WeightFormat::kFp4E2M1, false, 5, 8192, 28672, 64, cuda::DType::kFloat32, cuda::DType::kBfloat16);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: W4A8 GEMM %d cases, %d failures, worst relative error %.3e (tolerance %.0e), %.1f s\n",
              g_failures ? "FAIL" : "PASS", g_cases, g_failures, g_worst, kTolerance, secs);
  return g_failures ? 1 : 0;
}
