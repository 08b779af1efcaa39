// Shared scaffolding of the CUDA test executables: skip rules, checked calls, random quantized
// weights, a threaded float64 reference loop and error statistics.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "w4a8/cuda_api.h"
#include "w4a8/formats.h"

namespace w4a8::cudatest {

// Exit 77 (ctest SKIP) unless a device that runs sm_90a code is present.
inline void SkipUnlessHopper() {
  if (cuda::DeviceCount() == 0) {
    std::puts("SKIP: no CUDA device");
    std::exit(77);
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9) {
    std::printf("SKIP: kernels are built for sm_90a; device 0 is %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    std::exit(77);
  }
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
}

#define CUDA_OK(expr)                                                                                   \
  do {                                                                                                  \
    const cudaError_t e_ = (expr);                                                                      \
    if (e_ != cudaSuccess) {                                                                            \
      std::printf("FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_));         \
      std::exit(1);                                                                                     \
    }                                                                                                   \
  } while (0)

#define STATUS_OK(expr)                                                                                 \
  do {                                                                                                  \
    const ::w4a8::Status s_ = (expr);                                                                   \
    if (s_ != ::w4a8::Status::kOk) {                                                                    \
      std::printf("FAIL %s:%d: %s -> %s (%s)\n", __FILE__, __LINE__, #expr, ::w4a8::StatusName(s_),     \
                  ::w4a8::cuda::LastErrorText());                                                       \
      std::exit(1);                                                                                     \
    }                                                                                                   \
  } while (0)

// Device buffer freed on scope exit.
template <typename T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceArray(size_t n) : count(n) { CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void Upload(const T* host) { CUDA_OK(cudaMemcpy(ptr, host, count * sizeof(T), cudaMemcpyHostToDevice)); }
  void Download(T* host) const { CUDA_OK(cudaMemcpy(host, ptr, count * sizeof(T), cudaMemcpyDeviceToHost)); }
  // All bytes 0xff: a NaN in fp32, bf16 and fp16, so an unwritten output cannot pass.
  void Poison() { CUDA_OK(cudaMemset(ptr, 0xff, count * sizeof(T))); }
};

// A random weight in the canonical layout; owns its arrays.
struct RandomWeight {
  std::vector<uint8_t> codes, zero_points;
  std::vector<float> scales;
  QuantizedWeight w{};
  RandomWeight(WeightFormat format, bool asymmetric, int32_t n, int32_t k, int32_t group, std::mt19937& rng) {
    codes.resize(CodeBytes(n, k, group));
    zero_points.resize(ZeroPointBytes(n, k, group));
    scales.resize(ScaleCount(n, k, group));
    for (auto& c : codes) c = (uint8_t)rng();
    for (auto& z : zero_points) z = (uint8_t)rng();
    std::uniform_real_distribution<float> s(0.002f, 0.03f);
    for (auto& v : scales) v = s(rng);
    w = {format, n, k, group, codes.data(), scales.data(), asymmetric ? zero_points.data() : nullptr};
  }
};

// fn(i) for i in [0, n) on all hardware threads.
template <typename Fn>
void ParallelFor(int64_t n, Fn fn) {
  const int threads = (int)std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t i = t; i < n; i += threads) fn(i);
    });
  for (auto& th : pool) th.join();
}

// y_ref[m][n] = row_scale[m] * sum_k x[m][k] * W[n][k] in double (W from DequantizeAt, exact in double).
inline std::vector<double> ReferenceGemm(const QuantizedWeight& w, int32_t m, const std::vector<double>& x,
                                         const std::vector<double>& row_scale) {
  std::vector<double> y((size_t)m * w.n);
  ParallelFor(w.n, [&](int64_t n) {
    std::vector<double> row(w.k);
    const int32_t blocks = BlocksPerRow(w.k, w.group_size);
    for (int32_t k = 0; k < w.k; ++k) {
      const int32_t b = k / w.group_size;
      const int q = CodeAt(w.codes, w.k, w.group_size, (int32_t)n, k);
      const double v = w.format == WeightFormat::kFp4E2M1 ? (double)Fp4E2M1Value(q)
                                                           : (double)(q - ZeroPointAt(w.zero_points, blocks, (int32_t)n, b));
      row[k] = v * (double)w.scales[(size_t)n * blocks + b];
    }
    for (int32_t i = 0; i < m; ++i) {
      double s = 0;
      const double* xr = x.data() + (size_t)i * w.k;
      for (int32_t k = 0; k < w.k; ++k) s += xr[k] * row[k];
      y[(size_t)i * w.n + n] = s * row_scale[i];
    }
  });
  return y;
}

struct ErrorStats {
  double rel_l2 = 0, max_rel = 0;  // ||y - ref|| / ||ref||, max |y - ref| / max |ref|
  size_t nonfinite = 0;
  bool Pass(double tol) const { return nonfinite == 0 && rel_l2 < tol && max_rel < tol; }
};

inline ErrorStats Compare(const std::vector<float>& y, const std::vector<double>& ref) {
  ErrorStats e;
  double num = 0, den = 0, max_err = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(y[i])) {
      ++e.nonfinite;
      continue;
    }
    const double d = (double)y[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    max_err = std::max(max_err, std::fabs(d));
    max_ref = std::max(max_ref, std::fabs(ref[i]));
  }
  e.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  e.max_rel = max_ref > 0 ? max_err / max_ref : max_err;
  return e;
}

inline float Bf16BitsToFloat(uint16_t b) {
  const uint32_t u = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace w4a8::cudatest
