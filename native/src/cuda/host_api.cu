// Host-memory conveniences over the launchers (used by the addon): allocate, copy in, run on the
// default stream, copy back, synchronize, free. Each call is self-contained and leaves nothing behind.
#include <vector>

#include "cuda_common.cuh"

namespace w4a8::cuda {
namespace {

// Device allocations released on scope exit, whatever path returns.
class DeviceArena {
 public:
  ~DeviceArena() {
    for (void* p : ptrs_) cudaFree(p);
  }
  template <typename T>
  Status Alloc(size_t count, T** out) {
    void* p = nullptr;
    W4A8_CUDA_TRY(CheckCall(cudaMalloc(&p, count * sizeof(T) > 0 ? count * sizeof(T) : 1)));
    ptrs_.push_back(p);
    *out = static_cast<T*>(p);
    return Status::kOk;
  }
  template <typename T>
  Status Upload(const T* host, size_t count, T** out) {
    W4A8_CUDA_TRY(Alloc(count, out));
    return CheckCall(cudaMemcpy(*out, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }

 private:
  std::vector<void*> ptrs_;
};

struct WeightGuard {
  DeviceWeight w;
  ~WeightGuard() { FreeWeight(&w); }
};

}  // namespace

Status LinearHost(LinearKind kind, const QuantizedWeight& w, int32_t m, const float* x, float* y) {
  if (!x || !y || m < 1) return Status::kInvalidArgument;
  if (kind == LinearKind::kW4A16 && m > kW4A16MaxTokens) return Status::kInvalidArgument;
  if (kind != LinearKind::kW4A8 && kind != LinearKind::kW4A16) return Status::kInvalidArgument;
  if (DeviceCount() == 0) return Status::kUnsupported;
  WeightGuard weight;
  W4A8_CUDA_TRY(UploadWeight(w, &weight.w));
  DeviceArena arena;
  float* d_x = nullptr;
  float* d_y = nullptr;
  W4A8_CUDA_TRY(arena.Upload(x, (size_t)m * w.k, &d_x));
  W4A8_CUDA_TRY(arena.Alloc((size_t)m * w.n, &d_y));
  if (kind == LinearKind::kW4A8) {
    const int32_t ldq = Int8ActivationStride(w.k);
    int8_t* d_q = nullptr;
    float* d_scales = nullptr;
    W4A8_CUDA_TRY(arena.Alloc((size_t)m * ldq, &d_q));
    W4A8_CUDA_TRY(arena.Alloc((size_t)m, &d_scales));
    W4A8_CUDA_TRY(QuantizeActivationsInt8(d_x, DType::kFloat32, m, w.k, d_q, ldq, d_scales, nullptr));
    const size_t ws_bytes = GemmW4A8WorkspaceBytes(m, weight.w);
    float* d_ws = nullptr;
    if (ws_bytes) W4A8_CUDA_TRY(arena.Alloc(ws_bytes / sizeof(float), &d_ws));
    W4A8_CUDA_TRY(GemmW4A8(d_q, ldq, d_scales, m, weight.w, d_y, DType::kFloat32, d_ws, ws_bytes, nullptr));
  } else {
    const size_t ws_bytes = GemmW4A16WorkspaceBytes(m, weight.w);
    float* d_ws = nullptr;
    if (ws_bytes) W4A8_CUDA_TRY(arena.Alloc(ws_bytes / sizeof(float), &d_ws));
    W4A8_CUDA_TRY(GemmW4A16(d_x, DType::kFloat32, m, weight.w, d_y, DType::kFloat32, d_ws, ws_bytes, nullptr));
  }
  return CheckCall(cudaMemcpy(y, d_y, (size_t)m * w.n * sizeof(float), cudaMemcpyDeviceToHost));
}

Status QuantizeActivationsHost(int32_t m, int32_t k, const float* x, int8_t* q_int8, uint8_t* q_fp8,
                               float* scales_int8, float* scales_fp8) {
  if (!x || m < 1 || k < 1 || (q_int8 && !scales_int8) || (q_fp8 && !scales_fp8) || (!q_int8 && !q_fp8))
    return Status::kInvalidArgument;
  if (DeviceCount() == 0) return Status::kUnsupported;
  DeviceArena arena;
  float* d_x = nullptr;
  W4A8_CUDA_TRY(arena.Upload(x, (size_t)m * k, &d_x));
  if (q_int8) {
    const int32_t ldq = Int8ActivationStride(k);
    int8_t* d_q = nullptr;
    float* d_s = nullptr;
    W4A8_CUDA_TRY(arena.Alloc((size_t)m * ldq, &d_q));
    W4A8_CUDA_TRY(arena.Alloc((size_t)m, &d_s));
    W4A8_CUDA_TRY(QuantizeActivationsInt8(d_x, DType::kFloat32, m, k, d_q, ldq, d_s, nullptr));
    W4A8_CUDA_TRY(CheckCall(cudaMemcpy2D(q_int8, k, d_q, ldq, k, m, cudaMemcpyDeviceToHost)));
    W4A8_CUDA_TRY(CheckCall(cudaMemcpy(scales_int8, d_s, (size_t)m * sizeof(float), cudaMemcpyDeviceToHost)));
  }
  if (q_fp8) {
    uint8_t* d_q = nullptr;
    float* d_s = nullptr;
    W4A8_CUDA_TRY(arena.Alloc((size_t)m * k, &d_q));
    W4A8_CUDA_TRY(arena.Alloc((size_t)m, &d_s));
    W4A8_CUDA_TRY(QuantizeActivationsFp8(d_x, DType::kFloat32, m, k, d_q, d_s, nullptr));
    W4A8_CUDA_TRY(CheckCall(cudaMemcpy(q_fp8, d_q, (size_t)m * k, cudaMemcpyDeviceToHost)));
    W4A8_CUDA_TRY(CheckCall(cudaMemcpy(scales_fp8, d_s, (size_t)m * sizeof(float), cudaMemcpyDeviceToHost)));
  }
  return Status::kOk;
}

Status KroneckerAdapterAddHost(int32_t terms, int32_t a_rows, int32_t a_cols, int32_t b_rows, int32_t b_cols,
                               const float* a, const float* b, int32_t m, const float* x, float* y) {
  if (!a || !b || !x || !y || m < 1 || terms < 1 || a_rows < 1 || a_cols < 1 || b_rows < 1 || b_cols < 1)
    return Status::kInvalidArgument;
  if ((int64_t)terms * a_cols * b_rows > kKronMaxInner) return Status::kUnsupported;
  if (DeviceCount() == 0) return Status::kUnsupported;
  const size_t n = (size_t)a_rows * b_rows, k = (size_t)a_cols * b_cols;
  DeviceArena arena;
  float *d_a = nullptr, *d_b = nullptr, *d_x = nullptr, *d_y = nullptr;
  W4A8_CUDA_TRY(arena.Upload(a, (size_t)terms * a_rows * a_cols, &d_a));
  W4A8_CUDA_TRY(arena.Upload(b, (size_t)terms * b_rows * b_cols, &d_b));
  W4A8_CUDA_TRY(arena.Upload(x, (size_t)m * k, &d_x));
  W4A8_CUDA_TRY(arena.Upload(y, (size_t)m * n, &d_y));
  const DeviceKronTerms kt{terms, a_rows, a_cols, b_rows, b_cols, d_a, d_b};
  W4A8_CUDA_TRY(KroneckerAdapterAdd(kt, m, d_x, d_y, nullptr));
  return CheckCall(cudaMemcpy(y, d_y, (size_t)m * n * sizeof(float), cudaMemcpyDeviceToHost));
}

}  // namespace w4a8::cuda
