// Per-token activation quantization on the GPU (int8 and FP8 E4M3, from fp32/bf16/fp16) equals the
// CPU twin (cuda_bits.h with the cpu_kernels.h definitions) bit for bit, including all-zero rows,
// the zeroed int8 row padding and single-column rows.
#include "cuda_test_common.cuh"
#include "w4a8/cuda_bits.h"
#include "w4a8/half.h"

using namespace w4a8;
using namespace w4a8::cudatest;

namespace {

int g_failures = 0;

void RunCase(std::mt19937& rng, cuda::DType type, int32_t m, int32_t k) {
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> xf((size_t)m * k);
  std::vector<uint8_t> raw(xf.size() * (type == cuda::DType::kFloat32 ? 4 : 2));
  for (size_t i = 0; i < xf.size(); ++i) {
    float v = (i / k == 1) ? 0.0f : u(rng) * ((rng() % 50 == 0) ? 30.0f : 1.0f);  // row 1 all zero
    if (type == cuda::DType::kFloat32) {
      std::memcpy(raw.data() + 4 * i, &v, 4);
    } else {
      const uint16_t b = type == cuda::DType::kBfloat16 ? FloatToBf16(v) : FloatToHalf(v);
      std::memcpy(raw.data() + 2 * i, &b, 2);
      v = type == cuda::DType::kBfloat16 ? Bf16ToFloat(b) : HalfToFloat(b);
    }
    xf[i] = v;
  }
  DeviceArray<uint8_t> d_x(raw.size());
  d_x.Upload(raw.data());
  const int32_t ldq = cuda::Int8ActivationStride(k);
  DeviceArray<int8_t> d_q((size_t)m * ldq);
  DeviceArray<uint8_t> d_f8((size_t)m * k);
  DeviceArray<float> d_s(m), d_s8(m);
  CUDA_OK(cudaMemset(d_q.ptr, 0x55, d_q.count));
  d_f8.Poison();
  d_s.Poison();
  d_s8.Poison();
  STATUS_OK(cuda::QuantizeActivationsInt8(d_x.ptr, type, m, k, d_q.ptr, ldq, d_s.ptr, nullptr));
  STATUS_OK(cuda::QuantizeActivationsFp8(d_x.ptr, type, m, k, d_f8.ptr, d_s8.ptr, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<int8_t> q(d_q.count);
  std::vector<uint8_t> f8(d_f8.count);
  std::vector<float> s(m), s8(m);
  d_q.Download(q.data());
  d_f8.Download(f8.data());
  d_s.Download(s.data());
  d_s8.Download(s8.data());
  size_t bad = 0;
  for (int32_t i = 0; i < m; ++i) {
    float amax = 0;
    for (int32_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(xf[(size_t)i * k + j]));
    const TokenScale ti = MakeTokenScale(amax, kInt8Max), tf = MakeTokenScale(amax, kE4M3Max);
    bad += s[i] != ti.scale;
    bad += s8[i] != tf.scale;
    for (int32_t j = 0; j < ldq; ++j) {
      const int8_t want = j < k ? QuantizeInt8(xf[(size_t)i * k + j], ti.inverse) : 0;
      bad += q[(size_t)i * ldq + j] != want;
    }
    for (int32_t j = 0; j < k; ++j) bad += f8[(size_t)i * k + j] != QuantizeE4M3(xf[(size_t)i * k + j], tf.inverse);
  }
  if (bad) {
    std::printf("FAIL type %d m=%d k=%d: %zu mismatches\n", (int)type, m, k, bad);
    ++g_failures;
  }
}

}  // namespace

int main() {
  SkipUnlessHopper();
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  int cases = 0;
  for (cuda::DType t : {cuda::DType::kFloat32, cuda::DType::kBfloat16, cuda::DType::kFloat16})
    for (int32_t m : {2, 3, 17})
      for (int32_t k : {1, 63, 64, 160, 1000, 4096}) {
        RunCase(rng, t, m, k);
        ++cases;
      }
  RunCase(rng, cuda::DType::kBfloat16, 64, 28672);
  ++cases;
  const bool refused = cuda::QuantizeActivationsInt8(reinterpret_cast<void*>(16), cuda::DType::kFloat32, 2, 100,
                                                     reinterpret_cast<int8_t*>(16), 100, reinterpret_cast<float*>(16),
                                                     nullptr) == Status::kInvalidArgument;
  if (!refused) {
    std::puts("FAIL a row stride that is not a multiple of 64 was accepted");
    ++g_failures;
  }
  std::printf("%s: activation quantization %d cases, %d failures\n", g_failures ? "FAIL" : "PASS", cases, g_failures);
  return g_failures ? 1 : 0;
}
