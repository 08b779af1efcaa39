// RTN weight quantization: the fast path equals the scalar reference bit for bit over formats,
// group sizes, ragged K, per channel, pow2 scales, clip ratios and both groupings; the codes decode
// (formats.h DequantizeAt) to the returned dequantized weights; hand-checked conventions.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/group_codec.h"
#include "test_check.h"
#include "w4a8/quant.h"

using namespace w4a8;

struct Outputs {
  std::vector<uint8_t> codes, zp;
  std::vector<float> scales, deq;
  QuantizedOutputs View() {
    QuantizedOutputs o;
    o.codes = codes.data();
    o.scales = scales.data();
    o.zero_points = zp.empty() ? nullptr : zp.data();
    o.dequantized = deq.data();
    return o;
  }
};

static Outputs Alloc(const WeightQuantConfig& cfg, int32_t k, int32_t n) {
  Outputs o;
  o.codes.assign(QuantCodeBytes(cfg, k, n), 0xAA);
  o.scales.assign(QuantScaleCount(cfg, k, n), -1.0f);
  o.zp.assign(QuantZeroPointBytes(cfg, k, n), 0xAA);
  o.deq.assign((size_t)k * n, NAN);
  return o;
}

static std::vector<float> RandomWeights(int32_t k, int32_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> w((size_t)k * n);
  for (auto& x : w) x = d(rng);
  // An outlier input row and an all-zero group, as real checkpoints have.
  for (int32_t j = 0; j < n; ++j) w[(size_t)(k / 3) * n + j] *= 8.0f;
  for (int32_t kk = 0; kk < std::min(k, 16); ++kk) w[(size_t)kk * n + 0] = 0.0f;
  return w;
}

static void TestFastEqualsReference() {
  const int32_t shapes[][2] = {{64, 48}, {256, 130}, {200, 33}, {17, 9}, {1024, 70}};
  // -1: per channel with one block of K rounded up to a power of two (per_channel_block 0);
  // 0: per channel with the default 128-wide blocks repeating the channel's scale.
  const int32_t groups[] = {-1, 0, 16, 32, 64, 128, 256};
  int cases = 0;
  for (auto& sh : shapes) {
    const int32_t k = sh[0], n = sh[1];
    const auto w = RandomWeights(k, n, (uint32_t)(k * 31 + n));
    for (int fmt = 0; fmt < 2; ++fmt)
      for (int sym = 0; sym < 2; ++sym)
        for (int32_t g : groups)
          for (int grouping = 0; grouping < 2; ++grouping)
            for (int pow2 = 0; pow2 < 2; ++pow2)
              for (float clip : {1.0f, 0.85f}) {
                if (fmt == 1 && !sym) continue;
                WeightQuantConfig cfg;
                cfg.format = fmt ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4;
                cfg.symmetric = sym;
                cfg.group_size = g < 0 ? 0 : g;
                if (g < 0) cfg.per_channel_block = 0;
                cfg.grouping = grouping ? Grouping::kAlongN : Grouping::kAlongK;
                cfg.pow2_scales = pow2;
                cfg.clip_ratio = clip;
                Outputs fast = Alloc(cfg, k, n), ref = Alloc(cfg, k, n);
                const Status a = QuantizeWeight(w.data(), k, n, cfg, nullptr, fast.View(), 2);
                const Status b = QuantizeWeightRef(w.data(), k, n, cfg, nullptr, ref.View());
                CHECK(a == Status::kOk && b == Status::kOk, "status");
                CHECK(fast.codes == ref.codes, "codes differ k=%d n=%d g=%d fmt=%d sym=%d grp=%d", k, n, g, fmt, sym, grouping);
                CHECK(fast.zp == ref.zp, "zero points differ");
                CHECK(memcmp(fast.scales.data(), ref.scales.data(), fast.scales.size() * 4) == 0, "scales differ");
                CHECK(memcmp(fast.deq.data(), ref.deq.data(), fast.deq.size() * 4) == 0, "dequantized differ");
                bool finite = true;
                for (float x : fast.deq) finite &= std::isfinite(x);
                CHECK(finite, "NaN/Inf in dequantized");
                if (cfg.grouping == Grouping::kAlongK) {
                  // The canonical layout decodes to the dequantized weights.
                  QuantizedWeight qw{cfg.format, n, k, LayoutGroupSize(cfg, k), fast.codes.data(), fast.scales.data(),
                                     fast.zp.empty() ? nullptr : fast.zp.data()};
                  bool same = true;
                  for (int32_t kk = 0; kk < k; ++kk)
                    for (int32_t j = 0; j < n; ++j) same &= DequantizeAt(qw, j, kk) == fast.deq[(size_t)kk * n + j];
                  CHECK(same, "DequantizeAt disagrees k=%d n=%d g=%d", k, n, g);
                  // Quantization error is bounded by half a step (int4, no clipping) per element.
                  if (cfg.format == WeightFormat::kInt4 && clip == 1.0f) {
                    const int32_t lg = LayoutGroupSize(cfg, k), blocks = (k + lg - 1) / lg;
                    bool bounded = true;
                    for (int32_t kk = 0; kk < k; ++kk)
                      for (int32_t j = 0; j < n; ++j) {
                        const float s = fast.scales[(size_t)j * blocks + kk / lg];
                        bounded &= std::fabs(fast.deq[(size_t)kk * n + j] - w[(size_t)kk * n + j]) <= 0.5f * s * 1.0001f + 1e-12f;
                      }
                    CHECK(bounded, "error above half a step k=%d n=%d g=%d sym=%d pow2=%d", k, n, g, sym, pow2);
                  }
                }
                ++cases;
              }
  }
  std::printf("fast == reference over %d configurations\n", cases);
  // Per channel in 128-wide blocks: every block of a row repeats the row's scale and zero point.
  {
    const int32_t k = 300, n = 5;
    const auto w = RandomWeights(k, n, 3);
    WeightQuantConfig cfg;
    cfg.group_size = 0;
    Outputs o = Alloc(cfg, k, n);
    QuantizeWeight(w.data(), k, n, cfg, nullptr, o.View());
    CHECK(LayoutGroupSize(cfg, k) == 128 && o.scales.size() == (size_t)n * 3, "per-channel layout is 3 blocks of 128");
    for (int32_t j = 0; j < n; ++j) {
      CHECK(o.scales[j * 3] == o.scales[j * 3 + 1] && o.scales[j * 3] == o.scales[j * 3 + 2], "repeated scale");
      CHECK(ZeroPointAt(o.zp.data(), 3, j, 0) == ZeroPointAt(o.zp.data(), 3, j, 2), "repeated zero point");
    }
  }
}

static void TestConventions() {
  // One output channel, one group of 16 along K.
  const int32_t k = 16, n = 1;
  std::vector<float> w(16);
  for (int i = 0; i < 16; ++i) w[i] = -0.7f + 0.1f * i;  // min -0.7, max 0.8
  WeightQuantConfig sym;
  sym.symmetric = true;
  sym.group_size = 16;
  Outputs o = Alloc(sym, k, n);
  CHECK(QuantizeWeight(w.data(), k, n, sym, nullptr, o.View()) == Status::kOk, "sym");
  CHECK(o.scales[0] == 0.8f / 7.0f, "sym scale = absmax / 7 (got %g)", o.scales[0]);
  for (int i = 0; i < 16; ++i) {
    const float q = std::min(7.0f, std::max(-8.0f, std::nearbyint(w[i] / (0.8f / 7.0f))));
    CHECK(o.deq[i] == q * (0.8f / 7.0f), "sym element %d", i);
  }
  WeightQuantConfig asym = sym;
  asym.symmetric = false;
  o = Alloc(asym, k, n);
  CHECK(QuantizeWeight(w.data(), k, n, asym, nullptr, o.View()) == Status::kOk, "asym");
  const float s = (0.8f - -0.7f) / 15.0f;
  CHECK(o.scales[0] == s, "asym scale = (max - min) / 15");
  CHECK((o.zp[0] & 15) == (int)std::nearbyint(0.7f / s), "asym zero point = round(-min / scale)");
  // pow2 rounds the scale up to a power of two.
  WeightQuantConfig p2 = sym;
  p2.pow2_scales = true;
  o = Alloc(p2, k, n);
  QuantizeWeight(w.data(), k, n, p2, nullptr, o.View());
  CHECK(o.scales[0] == 0.125f, "pow2 scale of 0.8/7 is 1/8 (got %g)", o.scales[0]);
  // All-zero group: finite, exact zeros, codes at the zero point.
  std::vector<float> zeros(16, 0.0f);
  for (int fmt = 0; fmt < 2; ++fmt)
    for (int sy = 0; sy < 2; ++sy) {
      WeightQuantConfig c = sym;
      c.format = fmt ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4;
      c.symmetric = sy || fmt;
      o = Alloc(c, k, n);
      CHECK(QuantizeWeight(zeros.data(), k, n, c, nullptr, o.View()) == Status::kOk, "zeros");
      for (float x : o.deq) CHECK(x == 0.0f, "zero group dequantizes to 0");
      CHECK(o.scales[0] == 0.0f, "zero group scale 0");
    }
  // FP4: scale = absmax / 6, E2M1 ties to the even mantissa.
  WeightQuantConfig fp4 = sym;
  fp4.format = WeightFormat::kFp4E2M1;
  std::vector<float> f(16, 0.0f);
  const float in[] = {6, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5, -5, -0.3f, 2.4f, -6};
  const float want[] = {6, 0, 1, 1, 2, 2, 4, 4, -4, -0.5f, 2, -6};
  for (int i = 0; i < 12; ++i) f[i] = in[i];
  o = Alloc(fp4, k, n);
  QuantizeWeight(f.data(), k, n, fp4, nullptr, o.View());
  CHECK(o.scales[0] == 1.0f, "fp4 scale 6/6");
  for (int i = 0; i < 12; ++i) CHECK(o.deq[i] == want[i], "fp4 %g -> %g (want %g)", in[i], o.deq[i], want[i]);
  // NaN / Inf are refused.
  std::vector<float> bad(16, 1.0f);
  bad[5] = NAN;
  o = Alloc(sym, k, n);
  CHECK(QuantizeWeight(bad.data(), k, n, sym, nullptr, o.View()) == Status::kNumericalError, "NaN refused");
  bad[5] = INFINITY;
  CHECK(QuantizeWeight(bad.data(), k, n, sym, nullptr, o.View()) == Status::kNumericalError, "Inf refused");
  // Bad configs are refused.
  WeightQuantConfig badcfg = sym;
  badcfg.group_size = 48;
  CHECK(QuantizeWeight(w.data(), k, n, badcfg, nullptr, o.View()) == Status::kInvalidArgument, "group 48 refused");
  badcfg.group_size = 16;
  badcfg.clip_ratio = 0;
  CHECK(QuantizeWeight(w.data(), k, n, badcfg, nullptr, o.View()) == Status::kInvalidArgument, "clip 0 refused");
}

static void TestPerGroupClip() {
  const int32_t k = 64, n = 8;
  auto w = RandomWeights(k, n, 7);
  WeightQuantConfig cfg;
  cfg.group_size = 32;
  std::vector<float> clip(n * 2);
  for (size_t i = 0; i < clip.size(); ++i) clip[i] = 1.0f - 0.05f * (float)i;
  Outputs a = Alloc(cfg, k, n), b = Alloc(cfg, k, n);
  QuantizeWeight(w.data(), k, n, cfg, clip.data(), a.View());
  QuantizeWeightRef(w.data(), k, n, cfg, clip.data(), b.View());
  CHECK(a.codes == b.codes && a.scales == b.scales, "per-group clip: fast == reference");
  // Group (n=3, b=1) used ratio clip[7]: its scale is that of the clipped range.
  float lo = 0, hi = 0;
  for (int kk = 32; kk < 64; ++kk) {
    lo = std::min(lo, w[(size_t)kk * n + 3]);
    hi = std::max(hi, w[(size_t)kk * n + 3]);
  }
  CHECK(a.scales[3 * 2 + 1] == (hi * clip[7] - lo * clip[7]) / 15.0f, "clip ratio applied to the group range");
}

int main() {
  TestFastEqualsReference();
  TestConventions();
  TestPerGroupClip();
  return Finish();
}
