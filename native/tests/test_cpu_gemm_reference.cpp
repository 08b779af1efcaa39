// The W4A8 reference itself: (1) against a float64 matmul of the exactly dequantized weights, within the
// error the int8 activation quantization can introduce; (2) hand-checked quantization details (ties to
// even, the scale definition, fp4 lookup, zero points, all-zero groups).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "test_cpu_gemm_util.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using namespace w4a8::cpu;
using namespace w4a8::test;

namespace {

int g_failures = 0;

// |y - y64| <= sum over groups of (x_scale / 2) * sum |W| (rounding each x to the int8 grid moves it by at
// most half a step; clamping never triggers since |x| <= amax) plus fp32 accumulation slack.
void CheckAgainstFloat64(WeightKind kind, int32_t m, int32_t n, int32_t k, int32_t group, ActQuant act,
                         std::mt19937& rng) {
  const RandomWeight w(kind, n, k, group, rng);
  const std::vector<float> x = RandomActivations(m, k, rng);
  const std::vector<float> bias = RandomBias(n, rng);
  std::vector<float> y((size_t)m * n);
  GemmArgs args;
  args.m = m;
  args.x = x.data();
  args.bias = bias.data();
  args.y = y.data();
  args.act = act;
  if (GemmW4A8Reference(w.view(), args) != Status::kOk) {
    ++g_failures;
    std::puts("FAIL reference rejected a valid call");
    return;
  }
  const QuantizedWeight q = w.view();
  const int32_t blocks = BlocksPerRow(k, group);
  double worst_ratio = 0.0;
  for (int32_t t = 0; t < m; ++t) {
    const float* xr = x.data() + (size_t)t * k;
    std::vector<double> step(blocks);  // x_scale per group
    double row_amax = 0.0;
    for (int32_t i = 0; i < k; ++i) row_amax = std::max(row_amax, (double)std::fabs(xr[i]));
    for (int32_t b = 0; b < blocks; ++b) {
      double amax = 0.0;
      for (int32_t i = b * group; i < std::min(k, (b + 1) * group); ++i) amax = std::max(amax, (double)std::fabs(xr[i]));
      step[b] = (act == ActQuant::kPerToken ? row_amax : amax) / 127.0;
    }
    for (int32_t o = 0; o < n; ++o) {
      double exact = bias[o], bound = 0.0, magnitude = std::fabs(bias[o]);
      for (int32_t i = 0; i < k; ++i) {
        const double wd = DequantizeAt(q, o, i);
        exact += (double)xr[i] * wd;
        bound += 0.5 * step[i / group] * std::fabs(wd);
        magnitude += std::fabs((double)xr[i] * wd);
      }
      bound = bound * (1.0 + 1e-6) + 1e-6 * magnitude + 1e-30;
      const double err = std::fabs((double)y[(size_t)t * n + o] - exact);
      worst_ratio = std::max(worst_ratio, err / bound);
      if (err > bound && g_failures++ < 10) {
        std::printf("FAIL %s m=%d n=%d k=%d g=%d: y[%d][%d] = %.9g, float64 %.9g, error %.3g > bound %.3g\n",
                    WeightKindName(kind), m, n, k, group, t, o, y[(size_t)t * n + o], exact, err, bound);
      }
    }
  }
  std::printf("%-9s %-9s m=%-3d n=%-4d k=%-4d g=%-3d worst error / bound = %.3f\n", WeightKindName(kind),
              act == ActQuant::kPerToken ? "per-token" : "per-group", m, n, k, group, worst_ratio);
}

// One channel, one group of 16: W = (code - zero) * scale with a single non-zero weight at k = 0.
float OneWeightGemm(WeightFormat format, int code0, int zero_point, float scale, const std::vector<float>& x) {
  std::vector<uint8_t> codes(8, 0);
  std::vector<uint8_t> zp(1, (uint8_t)zero_point);
  // every other code is the neutral one, so only k = 0 contributes
  const int neutral = format == WeightFormat::kFp4E2M1 ? 0 : zero_point;
  for (int i = 0; i < 16; ++i) {
    const int c = i == 0 ? code0 : neutral;
    codes[i / 2] |= (uint8_t)(i % 2 ? c << 4 : c);
  }
  const float scales[1] = {scale};
  const QuantizedWeight w{format, 1, 16, 16, codes.data(), scales,
                          format == WeightFormat::kInt4 ? zp.data() : nullptr};
  float y = -1.0f;
  GemmArgs args;
  args.m = 1;
  args.x = x.data();
  args.y = &y;
  if (GemmW4A8Reference(w, args) != Status::kOk) return NAN;
  return y;
}

void Expect(float got, float want, const char* what) {
  if (got != want) {
    ++g_failures;
    std::printf("FAIL %s: got %.9g, want %.9g\n", what, got, want);
  }
}

void CheckHandComputed() {
  // amax = 127 -> x_scale = 1 and x_q = nearbyint(x): ties go to even.
  std::vector<float> x(16, 0.25f);
  x[5] = 127.0f;
  x[0] = 2.5f;
  Expect(OneWeightGemm(WeightFormat::kInt4, 9, 8, 1.0f, x), 2.0f, "2.5 rounds to 2 (ties to even)");
  x[0] = 3.5f;
  Expect(OneWeightGemm(WeightFormat::kInt4, 9, 8, 1.0f, x), 4.0f, "3.5 rounds to 4 (ties to even)");
  x[0] = -2.5f;
  Expect(OneWeightGemm(WeightFormat::kInt4, 9, 8, 1.0f, x), -2.0f, "-2.5 rounds to -2");
  // Asymmetric zero point: code 3 - zero 10 = -7; x_q = 100, scale 0.5 -> -350.
  x[0] = 100.0f;
  Expect(OneWeightGemm(WeightFormat::kInt4, 3, 10, 0.5f, x), -350.0f, "asymmetric zero point");
  // FP4 code 0b1111 = -6; x_q = 100 -> -600 * scale 0.25 = -150.
  Expect(OneWeightGemm(WeightFormat::kFp4E2M1, 15, 0, 0.25f, x), -150.0f, "fp4 -6");
  Expect(OneWeightGemm(WeightFormat::kFp4E2M1, 3, 0, 1.0f, x), 150.0f, "fp4 1.5");
  // amax = 2 -> x_scale = 2/127: x = 2 quantizes to 127 and comes back as 127 * (2/127) (fp32).
  std::vector<float> small(16, 0.0f);
  small[0] = 2.0f;
  Expect(OneWeightGemm(WeightFormat::kInt4, 9, 8, 1.0f, small), 127.0f * (2.0f / 127.0f), "x_scale = amax/127");
  // An all-zero group gives exactly 0 (no division by zero).
  std::vector<float> zeros(16, 0.0f);
  Expect(OneWeightGemm(WeightFormat::kInt4, 15, 0, 1.0f, zeros), 0.0f, "all-zero activations");
}

}  // namespace

int main() {
  CheckHandComputed();
  std::mt19937 rng(2024);
  const WeightKind kinds[] = {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4};
  for (WeightKind kind : kinds) {
    for (int32_t group : {16, 32, 64, 128, 256}) {
      for (ActQuant act : {ActQuant::kPerTokenPerGroup, ActQuant::kPerToken}) {
        CheckAgainstFloat64(kind, 3, 37, 300, group, act, rng);
      }
    }
    CheckAgainstFloat64(kind, 1, 5, 7, 16, ActQuant::kPerTokenPerGroup, rng);
    CheckAgainstFloat64(kind, 2, 64, 1000, 128, ActQuant::kPerTokenPerGroup, rng);
  }
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}
