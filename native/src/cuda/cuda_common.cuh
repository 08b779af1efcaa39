// Shared pieces of the CUDA kernels: launch checking, dtype loads and stores, and the PTX wrappers
// (cp.async, ldmatrix, mma.sync) the tensor-core GEMM uses.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "w4a8/cuda_api.h"
#include "w4a8/status.h"

namespace w4a8::cuda {

// Remembers the CUDA error text for LastErrorText() and maps the error to a Status.
Status RecordCudaError(cudaError_t err);

// After every launch: a bad configuration shows up in cudaGetLastError, which this also clears.
inline Status CheckLaunch() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? Status::kOk : RecordCudaError(err);
}
inline Status CheckCall(cudaError_t err) { return err == cudaSuccess ? Status::kOk : RecordCudaError(err); }

#define W4A8_CUDA_TRY(expr)                          \
  do {                                               \
    const ::w4a8::Status w4a8_s_ = (expr);           \
    if (w4a8_s_ != ::w4a8::Status::kOk) return w4a8_s_; \
  } while (0)

inline cudaStream_t AsStream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Multiprocessor count of the current device (cached per process; 132 on H100 SXM).
int MultiprocessorCount();

// y [m][n] (y_type) = sum over s < splits of partial [s][m][n_padded] fp32, in split order (split_k.cu).
Status SumSplits(const float* partial, int32_t splits, int32_t m, int32_t n, int32_t n_padded, void* y, DType y_type,
                 cudaStream_t stream);

__device__ __forceinline__ float LoadAsFloat(const void* p, DType t, size_t i) {
  if (t == DType::kBfloat16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  if (t == DType::kFloat16) return __half2float(static_cast<const __half*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

__device__ __forceinline__ void StoreFromFloat(void* p, DType t, size_t i, float v) {
  if (t == DType::kBfloat16) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  } else if (t == DType::kFloat16) {
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

// ---- PTX wrappers (sm_80+) ------------------------------------------------------------------

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; src_bytes 0 fills the destination with zeros (rows past m).
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices: exactly the A fragment of mma m16n8k32 s8 when lanes 0-7, 8-15, 16-23, 24-31
// point at rows 0-7 (k 0-15), rows 8-15 (k 0-15), rows 0-7 (k 16-31), rows 8-15 (k 16-31).
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(smem)));
}

// c += a (16x32 s8, row) * b (32x8 s8, col), int32 accumulators.
__device__ __forceinline__ void MmaS8(int32_t (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace w4a8::cuda
