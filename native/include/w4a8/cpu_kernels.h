// CPU W4A8 GEMM/GEMV: y[m][n] = sum_k x[m][k] * W[n][k] (+ bias[n]), W in the canonical 4-bit format
// (formats.h), x fp32 quantized to int8 inside the call.
//
// Numerics (defined by GemmW4A8Reference; every ISA path reproduces them BIT-EXACTLY):
//   1. Activation quantization, per token m and per span of k (one weight K-group for
//      kPerTokenPerGroup, the whole row for kPerToken):
//        amax = max |x| over the span;  x_scale = amax / 127;  inv = 127 / amax   (both fp32 divisions)
//        x_q = nearbyint(clamp(x * inv, -127, 127))   (ties to even; amax == 0 -> x_scale = 0, x_q = 0)
//   2. Weight as a small integer w_i: int4 -> q - zero_point (-15..15); fp4 -> 2*value (-12..12) with the
//      scale halved (exact), so both formats run the same integer kernels.
//   3. Per (m, n, group g): isum_g = sum_{k in g} x_q * w_i, exact int32 (|isum| < 2^23).
//   4. acc = 0; for g = 0, 1, ... in order: acc = fmaf((float)isum_g, x_scale[m][g] * w_scale[n][g], acc)
//      (one rounding per group, fused multiply-add, same order in every path; kPerToken uses the row
//      scale for every g). y = acc (+ bias[n], one fp32 add).
//   Non-finite inputs give unspecified (but non-crashing) outputs.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "w4a8/formats.h"
#include "w4a8/status.h"

namespace w4a8::cpu {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512Vnni = 2, kAmx = 3 };

const char* IsaName(Isa isa);  // "scalar", "avx2", "avx512vnni", "amx"
// ISAs this CPU and OS can run, in increasing order of preference. cpuid + XGETBV (OS saves the
// registers); AMX only after arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) succeeds.
std::vector<Isa> AvailableIsas();
bool IsaAvailable(Isa isa);
// Why an ISA is unavailable ("" when available), for skip messages and diagnostics.
const char* IsaUnavailableReason(Isa isa);
// Best available ISA, or the one named by env W4A8_ISA=scalar|avx2|avx512vnni|amx. A forced ISA the CPU
// lacks falls back to the best available and sets IsaOverrideIgnored().
Isa DefaultIsa();
bool IsaOverrideIgnored();
bool ParseIsa(const char* name, Isa* out);

// int8 symmetric activation quantization: per (token, weight K-group) like ONNX Runtime's
// accuracy_level 4 (default), or one scale per token.
enum class ActQuant : int { kPerTokenPerGroup = 0, kPerToken = 1 };

// Weights prepacked for the CPU kernels (owns its memory). Every ISA uses the same layout
// (formats.h, "CPU prepacked layouts": CpuPackedView); isa() only selects the kernels that run it.
class PackedWeight {
 public:
  virtual ~PackedWeight() = default;
  int32_t n() const { return view_.n; }
  int32_t k() const { return view_.k; }
  int32_t group_size() const { return view_.group_size; }
  WeightFormat format() const { return view_.format; }
  Isa isa() const { return isa_; }
  // The packed arrays (layout documented in formats.h); valid while this object lives.
  const CpuPackedView& view() const { return view_; }

 protected:
  CpuPackedView view_{};
  Isa isa_ = Isa::kScalar;
};

// kOk when w is usable by the CPU kernels: format known, n, k >= 1, group size 16..256 power of two,
// codes and scales non-null (zero_points may be null; it is ignored for fp4).
Status ValidateQuantizedWeight(const QuantizedWeight& w);
// Validates w and packs it for `isa`
// (kInvalidArgument on bad input, kUnsupported if the CPU lacks `isa`).
Status Prepack(const QuantizedWeight& w, Isa isa, std::unique_ptr<PackedWeight>* out);

struct GemmArgs {
  int32_t m = 0;            // tokens (>= 1)
  const float* x = nullptr;     // [m][k] row-major fp32 activations
  const float* bias = nullptr;  // [n] or null
  float* y = nullptr;           // [m][n] output (overwritten; must not alias x)
  ActQuant act = ActQuant::kPerTokenPerGroup;
};

// W4A8 with the kernels of w.isa(). Runs on the thread pool; blocks until done.
Status GemmW4A8(const PackedWeight& w, const GemmArgs& a);
// Same, but forcing another ISA's kernels on the same packed weight (tests, benchmarks).
Status GemmW4A8WithIsa(const PackedWeight& w, Isa isa, const GemmArgs& a);
// Scalar reference twin on the canonical layout: defines the exact numerics above. Single-threaded.
Status GemmW4A8Reference(const QuantizedWeight& w, const GemmArgs& a);

// The one thread pool of the process (kernels, linalg, quantizers, calibration): all hardware threads
// by default; n <= 0 restores the default. Results do not depend on the thread count (each output
// element is computed by one thread in one fixed order; sums use chunks fixed by the arguments).
void SetNumThreads(int n);
int NumThreads();

}  // namespace w4a8::cpu
