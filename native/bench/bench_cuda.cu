// GPU benchmark of the w4a8 CUDA kernels: W4A8 GEMM (int8 activations already quantized), W4A16 decode
// GEMV (m <= 8, bf16 activations, split-K workspace), and per-token int8 quantization of bf16
// activations. Prints one JSON line per (kernel, n, k, m).
//
// Method (docs: METHOD.md of the device notes): random non-zero data generated on the device; several
// copies of the weights, together > 200 MB (4x the 50 MB L2), used in rotation so that every launch
// reads its weights from HBM; warm-up; then `batches` batches of `reps` launches each timed with CUDA
// events, reps chosen so that a batch lasts ~2 ms; the median batch mean is reported (and the min).
//
//   bench_cuda [--max-seconds S] [--quick]
//   --quick: the 4096x4096 shape only (a smoke run).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "w4a8/cuda_api.h"

using namespace w4a8;

namespace {

#define CUDA_OK(expr)                                                                             \
  do {                                                                                            \
    const cudaError_t e_ = (expr);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "bench_cuda: %s failed: %s\n", #expr, cudaGetErrorString(e_));         \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

#define STATUS_OK(expr)                                                                           \
  do {                                                                                            \
    const Status s_ = (expr);                                                                     \
    if (s_ != Status::kOk) {                                                                      \
      std::fprintf(stderr, "bench_cuda: %s failed: %s (%s)\n", #expr, StatusName(s_),              \
                   cuda::LastErrorText());                                                        \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

__device__ uint32_t Hash(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + seed;
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return (uint32_t)x;
}

// kind 0: raw words; 1: float in [lo, hi); 2: bf16 in [lo, hi); 3: byte & mask; 4: int8 in [-127, 127]
__global__ void FillKernel(void* dst, size_t count, int kind, float lo, float hi, uint32_t mask, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    const uint32_t h = Hash(i, seed);
    const float u = lo + (hi - lo) * (float)(h >> 8) * (1.0f / 16777216.0f);
    switch (kind) {
      case 0: static_cast<uint32_t*>(dst)[i] = h; break;
      case 1: static_cast<float*>(dst)[i] = u; break;
      case 2: {
        uint32_t b;
        memcpy(&b, &u, 4);
        static_cast<uint16_t*>(dst)[i] = (uint16_t)(b >> 16);
        break;
      }
      case 3: static_cast<uint8_t*>(dst)[i] = (uint8_t)(h & mask); break;
      default: static_cast<int8_t*>(dst)[i] = (int8_t)((int)(h % 255) - 127); break;
    }
  }
}

void Fill(void* dst, size_t count, int kind, float lo, float hi, uint32_t mask, uint32_t seed) {
  FillKernel<<<1024, 256>>>(dst, count, kind, lo, hi, mask, seed);
  CUDA_OK(cudaGetLastError());
}

struct Timing {
  double median_us = 0, min_us = 0;
  int reps = 0, batches = 0;
};

// launch(i) enqueues the i-th launch (the caller rotates buffers by i).
template <typename Launch>
Timing TimeIt(Launch launch) {
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  int counter = 0;
  for (int i = 0; i < 3; ++i) launch(counter++);  // warm-up (module load, attribute setting, clocks)
  CUDA_OK(cudaEventRecord(a));
  launch(counter++);
  CUDA_OK(cudaEventRecord(b));
  CUDA_OK(cudaEventSynchronize(b));
  float probe_ms = 0;
  CUDA_OK(cudaEventElapsedTime(&probe_ms, a, b));
  Timing t;
  t.reps = std::max(1, std::min(500, (int)(2.0 / std::max(probe_ms, 1e-3f))));
  t.batches = 7;
  std::vector<double> means;
  for (int bi = 0; bi < t.batches; ++bi) {
    CUDA_OK(cudaEventRecord(a));
    for (int r = 0; r < t.reps; ++r) launch(counter++);
    CUDA_OK(cudaEventRecord(b));
    CUDA_OK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, a, b));
    means.push_back(1000.0 * ms / t.reps);
  }
  std::sort(means.begin(), means.end());
  t.median_us = means[means.size() / 2];
  t.min_us = means.front();
  CUDA_OK(cudaEventDestroy(a));
  CUDA_OK(cudaEventDestroy(b));
  return t;
}

void PrintLine(const char* kernel, int n, int k, int m, int group, const Timing& t, double bytes, double flops,
               int copies) {
  std::printf(
      "{\"source\":\"w4a8\",\"kernel\":\"%s\",\"n\":%d,\"k\":%d,\"m\":%d,\"group\":%d,\"us\":%.3f,\"us_min\":%.3f,"
      "\"reps\":%d,\"batches\":%d,\"weight_copies\":%d,\"gbps\":%.1f,\"tflops\":%.2f}\n",
      kernel, n, k, m, group, t.median_us, t.min_us, t.reps, t.batches, copies, bytes / (t.median_us * 1e3),
      flops / (t.median_us * 1e6));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double max_seconds = 150;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--max-seconds") && i + 1 < argc) {
      max_seconds = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: bench_cuda [--max-seconds S] [--quick]\n");
      return 2;
    }
  }
  if (cuda::DeviceCount() == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::fprintf(stderr, "bench_cuda: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  const int shapes[][2] = {{4096, 4096}, {8192, 8192}, {28672, 8192}, {8192, 28672}};  // n x k
  const int ms[] = {1, 4, 16, 64, 256, 1024, 4096};
  const int group = 128;
  const size_t kRotateBytes = 200ull << 20;
  uint32_t seed = 12345;

  for (const auto& sh : shapes) {
    if (quick && sh[0] != 4096) continue;
    const int n = sh[0], k = sh[1];
    CudaPackedView shape = CudaPackedShape(WeightFormat::kInt4, n, k, group);
    const size_t code_words = CudaPackedCodeWords(shape), scale_count = CudaPackedScaleCount(shape);
    const size_t weight_bytes = code_words * 4 + scale_count * 5;
    const int copies = (int)std::max<size_t>(2, std::min<size_t>(32, (kRotateBytes + weight_bytes - 1) / weight_bytes));
    std::vector<cuda::DeviceWeight> weights(copies);
    std::vector<void*> allocations;
    for (auto& w : weights) {
      void *codes, *scales, *zps;
      CUDA_OK(cudaMalloc(&codes, code_words * 4));
      CUDA_OK(cudaMalloc(&scales, scale_count * 4));
      CUDA_OK(cudaMalloc(&zps, scale_count));
      allocations.insert(allocations.end(), {codes, scales, zps});
      Fill(codes, code_words, 0, 0, 0, 0, seed++);
      Fill(scales, scale_count, 1, 0.002f, 0.03f, 0, seed++);
      Fill(zps, scale_count, 3, 0, 0, 0xf, seed++);
      w.view = shape;
      w.view.codes = static_cast<uint32_t*>(codes);
      w.view.scales = static_cast<float*>(scales);
      w.view.zero_points = static_cast<uint8_t*>(zps);
    }
    const int max_m = quick ? 256 : 4096;
    const int32_t ldq = cuda::Int8ActivationStride(k);
    void *x_bf16, *xq, *x_scales, *y, *ws;
    CUDA_OK(cudaMalloc(&x_bf16, (size_t)max_m * k * 2));
    CUDA_OK(cudaMalloc(&xq, (size_t)max_m * ldq));
    CUDA_OK(cudaMalloc(&x_scales, (size_t)max_m * 4));
    CUDA_OK(cudaMalloc(&y, (size_t)max_m * n * 4));
    size_t ws_bytes = cuda::GemmW4A16WorkspaceBytes(cuda::kW4A16MaxTokens, weights[0]);
    for (int m : ms)
      if (m <= max_m) ws_bytes = std::max(ws_bytes, cuda::GemmW4A8WorkspaceBytes(m, weights[0]));
    CUDA_OK(cudaMalloc(&ws, std::max<size_t>(ws_bytes, 16)));
    Fill(x_bf16, (size_t)max_m * k, 2, -1.0f, 1.0f, 0, seed++);
    Fill(xq, (size_t)max_m * ldq, 4, 0, 0, 0, seed++);
    Fill(x_scales, max_m, 1, 0.001f, 0.02f, 0, seed++);
    CUDA_OK(cudaDeviceSynchronize());

    for (int m : ms) {
      if (m > max_m) continue;
      if (elapsed() > max_seconds) {
        std::fprintf(stderr, "bench_cuda: time budget of %.0f s spent; skipping n=%d k=%d m>=%d\n", max_seconds, n, k, m);
        break;
      }
      const double wbytes = (double)n * k / 2 + (double)n * ((k + group - 1) / group) * 5;
      const double flops = 2.0 * m * n * k;
      Timing t = TimeIt([&](int i) {
        STATUS_OK(cuda::GemmW4A8(static_cast<int8_t*>(xq), ldq, static_cast<float*>(x_scales), m, weights[i % copies], y,
                                 cuda::DType::kBfloat16, ws, ws_bytes, nullptr));
      });
      PrintLine("w4a8_gemm", n, k, m, group, t, wbytes + (double)m * k + (double)m * n * 2, flops, copies);
      if (m <= cuda::kW4A16MaxTokens) {
        t = TimeIt([&](int i) {
          STATUS_OK(cuda::GemmW4A16(x_bf16, cuda::DType::kBfloat16, m, weights[i % copies], y, cuda::DType::kBfloat16, ws,
                                    ws_bytes, nullptr));
        });
        PrintLine("w4a16_gemv", n, k, m, group, t, wbytes + (double)m * k * 2 + (double)m * n * 2, flops, copies);
      }
      t = TimeIt([&](int) {
        STATUS_OK(cuda::QuantizeActivationsInt8(x_bf16, cuda::DType::kBfloat16, m, k, static_cast<int8_t*>(xq), ldq,
                                                static_cast<float*>(x_scales), nullptr));
      });
      PrintLine("act_quant_int8", 0, k, m, 0, t, (double)m * k * 3 + m * 4.0, 0, 1);
    }
    for (void* p : {x_bf16, xq, x_scales, y, ws}) CUDA_OK(cudaFree(p));
    for (void* p : allocations) CUDA_OK(cudaFree(p));
  }
  CUDA_OK(cudaDeviceSynchronize());
  std::fprintf(stderr, "bench_cuda: done in %.1f s\n", elapsed());
  return 0;
}
