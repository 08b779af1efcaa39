// The bit helpers of cuda_bits.h give the same answers on the device (real prmt) as on the host
// (where test_cuda_bits checks them against oracles), and FloatToE4M3 agrees with CUDA's own
// __nv_cvt_float_to_fp8(.., __NV_SATFINITE, __NV_E4M3) on every bf16-representable float and on random floats.
#include <cuda_fp8.h>

#include "cuda_test_common.cuh"
#include "w4a8/cuda_bits.h"

using namespace w4a8;
using namespace w4a8::cudatest;

namespace {

struct Outputs {
  uint32_t perm, lo, hi, fp4lo, fp4hi, fp4e4m3, e4m3_ours, e4m3_cuda, intf;
};

__global__ void BitsKernel(const uint32_t* in, size_t count, Outputs* out) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= count) return;
  const uint32_t v = in[i];
  Outputs o;
  o.perm = BytePerm(v, v * 2654435761u, v >> 7);
  const Int8x4Pair p = UnpackInt4Word(v, v >> 28);
  o.lo = p.lo;
  o.hi = p.hi;
  const Int8x4Pair f = UnpackFp4Word(v);
  o.fp4lo = f.lo;
  o.fp4hi = f.hi;
  o.fp4e4m3 = Fp4BytesToE4M3x4(v & 0x0f0f0f0fu);
  float x;
  memcpy(&x, &v, 4);
  o.e4m3_ours = FloatToE4M3(x);
  o.e4m3_cuda = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
  const float g = Int8x4ByteToFloat(v, (int)(v & 3));
  memcpy(&o.intf, &g, 4);
  out[i] = o;
}

}  // namespace

int main() {
  SkipUnlessHopper();
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::vector<uint32_t> in;
  for (uint32_t b = 0; b < 0x10000u; ++b) in.push_back(b << 16);  // every bf16 bit pattern as fp32
  for (int i = 0; i < (1 << 20); ++i) in.push_back(rng());
  DeviceArray<uint32_t> d_in(in.size());
  d_in.Upload(in.data());
  DeviceArray<Outputs> d_out(in.size());
  d_out.Poison();
  BitsKernel<<<(unsigned)((in.size() + 255) / 256), 256>>>(d_in.ptr, in.size(), d_out.ptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<Outputs> out(in.size());
  d_out.Download(out.data());

  size_t bad = 0, cuda_disagree = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint32_t v = in[i];
    const Outputs& o = out[i];
    const Int8x4Pair p = UnpackInt4Word(v, v >> 28);
    const Int8x4Pair f = UnpackFp4Word(v);
    float x;
    std::memcpy(&x, &v, 4);
    const float g = Int8x4ByteToFloat(v, (int)(v & 3));
    uint32_t gb;
    std::memcpy(&gb, &g, 4);
    const bool same = o.perm == BytePerm(v, v * 2654435761u, v >> 7) && o.lo == p.lo && o.hi == p.hi &&
                      o.fp4lo == f.lo && o.fp4hi == f.hi && o.fp4e4m3 == Fp4BytesToE4M3x4(v & 0x0f0f0f0fu) &&
                      o.e4m3_ours == FloatToE4M3(x) && o.intf == gb;
    if (!same && bad++ < 10) std::printf("FAIL host/device differ for input 0x%08x\n", v);
    // CUDA may return either NaN encoding; compare the rest bit for bit.
    const bool nan = std::isnan(x);
    if (!nan && o.e4m3_ours != o.e4m3_cuda && cuda_disagree++ < 10)
      std::printf("FAIL e4m3(%.9g): ours 0x%02x, __nv_cvt_float_to_fp8 0x%02x\n", x, o.e4m3_ours, o.e4m3_cuda);
  }
  std::printf("%s: %zu inputs, %zu host/device differences, %zu disagreements with cuda_fp8\n",
              bad || cuda_disagree ? "FAIL" : "PASS", in.size(), bad, cuda_disagree);
  return bad || cuda_disagree ? 1 : 0;
}
