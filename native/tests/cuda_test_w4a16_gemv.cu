// W4A16 decode GEMV (m <= 8) on the GPU against a float64 CPU reference with the same (bf16/fp16-
// rounded) activations and exactly dequantized weights. Split-K on and off (workspace given or not),
// every group size and format, odd shapes, then the big decode shapes. Outputs poisoned with NaN.
#include <chrono>

#include "cuda_test_common.cuh"
#include "w4a8/half.h"

using namespace w4a8;
using namespace w4a8::cudatest;

namespace {

constexpr double kTolerance = 3e-3;
int g_cases = 0, g_failures = 0;
double g_worst = 0;

const char* TypeName(cuda::DType t) {
  return t == cuda::DType::kBfloat16 ? "bf16" : (t == cuda::DType::kFloat16 ? "f16" : "f32");
}

void RunCase(std::mt19937& rng, WeightFormat fmt, bool asym, int32_t m, int32_t n, int32_t k, int32_t group,
             cuda::DType x_type, cuda::DType y_type, bool split) {
  ++g_cases;
  RandomWeight rw(fmt, asym, n, k, group, rng);
  cuda::DeviceWeight dw;
  STATUS_OK(cuda::UploadWeight(rw.w, &dw));

  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<double> xd((size_t)m * k);
  std::vector<uint8_t> xraw(xd.size() * (x_type == cuda::DType::kFloat32 ? 4 : 2));
  for (size_t i = 0; i < xd.size(); ++i) {
    const float v = u(rng);
    if (x_type == cuda::DType::kFloat32) {
      std::memcpy(xraw.data() + 4 * i, &v, 4);
      xd[i] = v;
    } else {
      const uint16_t b = x_type == cuda::DType::kBfloat16 ? FloatToBf16(v) : FloatToHalf(v);
      std::memcpy(xraw.data() + 2 * i, &b, 2);
      xd[i] = x_type == cuda::DType::kBfloat16 ? Bf16ToFloat(b) : HalfToFloat(b);
    }
  }
  DeviceArray<uint8_t> d_x(xraw.size());
  d_x.Upload(xraw.data());
  const size_t ws_bytes = split ? cuda::GemmW4A16WorkspaceBytes(m, dw) : 0;
  DeviceArray<uint8_t> d_ws(ws_bytes);
  d_ws.Poison();  // partial sums must all be written before they are read
  const size_t out_bytes = (size_t)m * n * (y_type == cuda::DType::kFloat32 ? 4 : 2);
  DeviceArray<uint8_t> d_y(out_bytes);
  d_y.Poison();
  STATUS_OK(cuda::GemmW4A16(d_x.ptr, x_type, m, dw, d_y.ptr, y_type, split ? d_ws.ptr : nullptr, ws_bytes, nullptr));
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
      y[i] = y_type == cuda::DType::kBfloat16 ? Bf16BitsToFloat(b) : HalfToFloat(b);
    }
  }
  const std::vector<double> ref = ReferenceGemm(rw.w, m, xd, std::vector<double>(m, 1.0));
  const ErrorStats e = Compare(y, ref);
  g_worst = std::max(g_worst, std::max(e.rel_l2, e.max_rel));
  const bool ok = e.Pass(kTolerance);
  if (!ok || n * (int64_t)k >= (1 << 24)) {
    std::printf("%s fmt %d asym %d m=%d n=%d k=%d g=%d x=%s y=%s split=%d (workspace %zu B): rel_l2 %.2e max_rel %.2e "
                "nonfinite %zu\n",
                ok ? "ok  " : "FAIL", (int)fmt, asym, m, n, k, group, TypeName(x_type), TypeName(y_type), split,
                ws_bytes, e.rel_l2, e.max_rel, e.nonfinite);
  }
  if (!ok) ++g_failures;
  cuda::FreeWeight(&dw);
}

}  // namespace

int main() {
  SkipUnlessHopper();
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const auto t0 = std::chrono::steady_clock::now();

  {  // m > 8 is refused, not run.
    cuda::DeviceWeight empty;
    if (cuda::GemmW4A16(reinterpret_cast<void*>(16), cuda::DType::kBfloat16, 9, empty, reinterpret_cast<void*>(16),
                        cuda::DType::kFloat32, nullptr, 0, nullptr) != Status::kInvalidArgument) {
      std::puts("FAIL m = 9 was not refused");
      ++g_failures;
    }
  }
  const struct { WeightFormat f; bool asym; } formats[] = {
      {WeightFormat::kInt4, true}, {WeightFormat::kInt4, false}, {WeightFormat::kFp4E2M1, false}};
  for (const auto& f : formats)
    for (int32_t g : {16, 32, 64, 128, 256})
      for (int32_t m = 1; m <= 8; ++m)
        for (bool split : {false, true})
          RunCase(rng, f.f, f.asym, m, 72, 160, g, cuda::DType::kBfloat16, cuda::DType::kFloat32, split);
  const int32_t shapes[][2] = {{130, 300}, {256, 2500}, {520, 64}, {8, 40}, {1000, 1100}};
  for (const auto& f : formats)
    for (int32_t g : {16, 32, 128})
      for (const auto& sh : shapes)
        for (int32_t m : {1, 3, 8})
          RunCase(rng, f.f, f.asym, m, sh[0], sh[1], g, cuda::DType::kFloat32, cuda::DType::kFloat32, true);
  for (cuda::DType xt : {cuda::DType::kFloat16, cuda::DType::kBfloat16, cuda::DType::kFloat32})
    for (cuda::DType yt : {cuda::DType::kFloat16, cuda::DType::kBfloat16, cuda::DType::kFloat32})
      RunCase(rng, WeightFormat::kInt4, true, 4, 300, 700, 64, xt, yt, true);
  // Big decode shapes once each.
  RunCase(rng, WeightFormat::kInt4, true, 1, 4096, 4096, 128, cuda::DType::kBfloat16, cuda::DType::kBfloat16, true);
  RunCase(rng, WeightFormat::kInt4, false, 8, 8192, 8192, 128, cuda::DType::kBfloat16, cuda::DType::kFloat32, true);
  RunCase(rng, WeightFormat::kInt4, true, 4, 28672, 8192, 64, cuda::DType::kBfloat16, cuda::DType::kFloat32, true);
  RunCase(rng, WeightFormat::kFp4E2M1, false, 2, 8192, 28672, 32, cuda::DType::kBfloat16, cuda::DType::kBfloat16, true);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: W4A16 GEMV %d cases, %d failures, worst relative error %.3e (tolerance %.0e), %.1f s\n",
              g_failures ? "FAIL" : "PASS", g_cases, g_failures, g_worst, kTolerance, secs);
  return g_failures ? 1 : 0;
}
