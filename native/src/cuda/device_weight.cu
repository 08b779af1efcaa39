// Error bookkeeping shared by the launchers, and the upload of prepacked weights.
#include <cstring>
#include <vector>

#include "cuda_common.cuh"

namespace w4a8::cuda {

namespace {
thread_local char g_last_error[256] = {0};
}

Status RecordCudaError(cudaError_t err) {
  std::strncpy(g_last_error, cudaGetErrorString(err), sizeof(g_last_error) - 1);
  cudaGetLastError();  // clear a non-sticky error so that the next call starts clean
  return err == cudaErrorMemoryAllocation ? Status::kOutOfMemory : Status::kCudaError;
}

const char* LastErrorText() { return g_last_error; }

int MultiprocessorCount() {
  static int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      cudaGetLastError();
      return 132;  // H100 SXM; only a launch-shape heuristic
    }
    return n;
  }();
  return count;
}

Status UploadWeight(const QuantizedWeight& w, DeviceWeight* out) {
  if (!out || !w.codes || !w.scales || (w.format != WeightFormat::kInt4 && w.format != WeightFormat::kFp4E2M1) || w.n < 1 || w.k < 1 || w.group_size < kMinGroupSize ||
      w.group_size > (1 << 20) || (w.group_size & (w.group_size - 1)) != 0)
    return Status::kInvalidArgument;
  if (DeviceCount() == 0) return Status::kUnsupported;
  CudaPackedView v = CudaPackedShape(w.format, w.n, w.k, w.group_size);
  const size_t code_bytes = CudaPackedCodeWords(v) * sizeof(uint32_t);
  const size_t scale_bytes = CudaPackedScaleCount(v) * sizeof(float);
  const size_t zp_bytes = CudaPackedScaleCount(v);
  std::vector<uint8_t> host(code_bytes + scale_bytes + zp_bytes);
  auto* codes = reinterpret_cast<uint32_t*>(host.data());
  auto* scales = reinterpret_cast<float*>(host.data() + code_bytes);
  auto* zps = host.data() + code_bytes + scale_bytes;
  PackWeightForCuda(w, codes, scales, zps);

  void* mem = nullptr;
  W4A8_CUDA_TRY(CheckCall(cudaMalloc(&mem, host.size())));
  const Status s = CheckCall(cudaMemcpy(mem, host.data(), host.size(), cudaMemcpyHostToDevice));
  if (s != Status::kOk) {
    cudaFree(mem);
    return s;
  }
  // code_bytes and scale_bytes are multiples of 16 (n_padded % 128 == 0), so every array stays aligned.
  v.codes = static_cast<const uint32_t*>(mem);
  v.scales = reinterpret_cast<const float*>(static_cast<uint8_t*>(mem) + code_bytes);
  v.zero_points = static_cast<uint8_t*>(mem) + code_bytes + scale_bytes;
  FreeWeight(out);
  out->view = v;
  out->allocation = mem;
  return Status::kOk;
}

void FreeWeight(DeviceWeight* w) {
  if (w && w->allocation) {
    cudaFree(w->allocation);
    w->allocation = nullptr;
    w->view = CudaPackedView{};
  }
}

}  // namespace w4a8::cuda
