// MSE clip search (quant/group_codec.h MseClipParams) and the GPTQ options built on it and on AWQ's
// scaling: the searched group error is never above the unclipped one on the values it was chosen on
// (weighted or not) and is strictly lower on a group with an outlier; GPTQ with H = I and the clip
// search (no error propagation: per-group MSE rounding) has no more squared error than without; GPTQ
// with input_scale s equals GPTQ of diag(s) W under diag(1/s) H diag(1/s); LayerOutputErrorScaled
// with s = 1 equals LayerOutputError; bad scales and clip options are refused.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "quant/group_codec.h"
#include "test_check.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

using namespace w4a8;

namespace {

struct Out {
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
Out Alloc(const WeightQuantConfig& c, int32_t k, int32_t n) {
  Out o;
  o.codes.assign(QuantCodeBytes(c, k, n), 0);
  o.scales.assign(QuantScaleCount(c, k, n), 0);
  o.zp.assign(QuantZeroPointBytes(c, k, n), 0);
  o.deq.assign((size_t)k * n, 0);
  return o;
}

double GroupError(const std::vector<float>& v, const float* weight, const quant::GroupParams& p, WeightFormat f) {
  double sum = 0;
  for (size_t e = 0; e < v.size(); ++e) {
    const double d = (double)v[e] - quant::QuantDequant(v[e], p, f);
    sum += (weight ? weight[e] : 1.0) * d * d;
  }
  return sum;
}

}  // namespace

int main() {
  const uint32_t seed = 20261205;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.1f, 10.0f);

  // 1. The searched parameters are never worse than the unclipped ones on their own values.
  int strictly_better = 0, groups = 0;
  for (int fmt = 0; fmt < 2; ++fmt)
    for (int sym = 0; sym < 2; ++sym) {
      if (fmt == 1 && !sym) continue;
      WeightQuantConfig cfg;
      cfg.format = fmt ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4;
      cfg.symmetric = sym;
      for (int trial = 0; trial < 300; ++trial) {
        const int32_t count = 8 + trial % 57;
        std::vector<float> v(count), wt(count);
        for (auto& x : v) x = nd(rng) * (trial % 3 == 0 ? 0.01f : 1.0f);
        for (auto& x : wt) x = ud(rng);
        if (trial % 2 == 0) v[trial % count] *= 8.0f;  // an outlier: clipping it pays
        const bool weighted = trial % 4 >= 2;
        const float* w = weighted ? wt.data() : nullptr;
        const quant::GroupParams plain = quant::MseClipParams(v.data(), 1, count, w, cfg, 1, 0.5f);
        float ratio = 0;
        const quant::GroupParams best = quant::MseClipParams(v.data(), 1, count, w, cfg, 41, 0.6f, &ratio);
        const double e0 = GroupError(v, w, plain, cfg.format), e1 = GroupError(v, w, best, cfg.format);
        CHECK(e1 <= e0, "clip search worse than no clip: %g > %g (fmt %d sym %d trial %d)", e1, e0, fmt, sym, trial);
        CHECK(ratio >= 0.6f - 1e-6f && ratio <= 1.0f, "ratio %g outside [0.6, 1]", ratio);
        if (e1 < e0 * 0.999) ++strictly_better;
        ++groups;
      }
    }
  // With an outlier in half the groups, the search must find a better ratio in a good share of them.
  CHECK(strictly_better > groups / 4, "clip search improved only %d of %d groups", strictly_better, groups);
  {
    // A strided group (a column of a [rows][n] matrix, as GPTQ reads it) equals the same values contiguous.
    WeightQuantConfig cfg;
    const int32_t rows = 32, n = 5;
    std::vector<float> m((size_t)rows * n), col(rows);
    for (auto& x : m) x = nd(rng);
    for (int32_t r = 0; r < rows; ++r) col[r] = m[(size_t)r * n + 3];
    const quant::GroupParams a = quant::MseClipParams(m.data() + 3, n, rows, nullptr, cfg, 41, 0.6f);
    const quant::GroupParams b = quant::MseClipParams(col.data(), 1, rows, nullptr, cfg, 41, 0.6f);
    CHECK(a.scale == b.scale && a.zero_point == b.zero_point, "strided and contiguous groups differ");
  }

  // 2. GPTQ with H = I does not propagate errors: with the unweighted clip search it is per-group MSE
  // rounding, so its squared error is at most plain GPTQ's (= RTN's).
  const int32_t k = 128, n = 48;
  std::vector<float> w((size_t)k * n);
  for (auto& x : w) x = 0.05f * nd(rng);
  for (int i = 0; i < 20; ++i) w[(size_t)(rng() % (k * n))] *= 6.0f;
  std::vector<double> eye((size_t)k * k, 0.0);
  for (int32_t i = 0; i < k; ++i) eye[(size_t)i * k + i] = 1.0;
  for (int32_t g : {0, 32}) {
    WeightQuantConfig cfg;
    cfg.group_size = g;
    Out plain = Alloc(cfg, k, n), clipped = Alloc(cfg, k, n);
    GptqConfig gc;
    CHECK(GptqQuantize(w.data(), k, n, eye.data(), cfg, gc, plain.View(), nullptr, 1) == Status::kOk, "gptq eye");
    gc.clip_grid = 41;
    gc.clip_min = 0.6f;
    CHECK(GptqQuantize(w.data(), k, n, eye.data(), cfg, gc, clipped.View(), nullptr, 2) == Status::kOk, "gptq eye clip");
    double e0 = 0, e1 = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      e0 += std::pow((double)w[i] - plain.deq[i], 2);
      e1 += std::pow((double)w[i] - clipped.deq[i], 2);
    }
    CHECK(e1 <= e0, "g%d: GPTQ(I) with clip search has more error %g than without %g", g, e1, e0);
    CHECK(e1 < 0.99 * e0, "g%d: clip search changed nothing on weights with outliers (%g vs %g)", g, e1, e0);
    std::printf("g%d H=I squared error: no clip %.5g, clip search %.5g\n", g, e0, e1);
  }

  // 3. input_scale: GPTQ(W, H, s) == GPTQ(diag(s) W, diag(1/s) H diag(1/s)), bit for bit; with clip search and act order too.
  const int64_t rows = 512;
  std::vector<float> x((size_t)rows * k), s(k);
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t i = 0; i < k; ++i) x[(size_t)r * k + i] = nd(rng) * (1.0f + (float)(i % 5));
  for (auto& v : s) v = 0.25f + 0.1f * (float)(rng() % 20);
  std::vector<double> xd(x.begin(), x.end()), h((size_t)k * k), hs((size_t)k * k);
  GemmF64(true, false, k, k, rows, 1.0, xd.data(), k, xd.data(), k, 0.0, h.data(), k);
  std::vector<float> ws((size_t)k * n);
  for (int32_t i = 0; i < k; ++i) {
    for (int32_t j = 0; j < n; ++j) ws[(size_t)i * n + j] = w[(size_t)i * n + j] * s[i];
    for (int32_t j = 0; j < k; ++j) hs[(size_t)i * k + j] = h[(size_t)i * k + j] / ((double)s[i] * s[j]);
  }
  for (int variant = 0; variant < 3; ++variant) {
    WeightQuantConfig cfg;
    cfg.group_size = 32;
    GptqConfig gc;
    gc.act_order = variant == 1;
    if (variant == 2) {
      gc.clip_grid = 41;
      gc.clip_h_weighted = true;
    }
    Out a = Alloc(cfg, k, n), b = Alloc(cfg, k, n);
    GptqConfig scaled = gc;
    scaled.input_scale = s.data();
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, scaled, a.View(), nullptr, 2) == Status::kOk, "gptq scaled");
    CHECK(GptqQuantize(ws.data(), k, n, hs.data(), cfg, gc, b.View(), nullptr, 2) == Status::kOk, "gptq prescaled");
    CHECK(a.codes == b.codes && a.scales == b.scales && a.zp == b.zp && a.deq == b.deq, "variant %d: input_scale differs from the pre-scaled problem", variant);
    // The scaled error measure: Qa(X/s) against the dequantized diag(s) W, vs the same done by hand.
    std::vector<float> xs(x.size()), unscaled(w.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int32_t i = 0; i < k; ++i) xs[(size_t)r * k + i] = x[(size_t)r * k + i] / s[i];
    std::vector<float> y((size_t)rows * n), yq((size_t)rows * n);
    GemmF32(false, false, rows, n, k, 1.0f, x.data(), k, w.data(), n, 0.0f, y.data(), n);
    GemmF32(false, false, rows, n, k, 1.0f, xs.data(), k, a.deq.data(), n, 0.0f, yq.data(), n);
    double num = 0, den = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      num += std::pow((double)y[i] - yq[i], 2);
      den += (double)y[i] * y[i];
    }
    double err = 0;
    CHECK(LayerOutputErrorScaled(x.data(), rows, k, s.data(), w.data(), a.deq.data(), n, ActFormat::kNone, &err, 2) == Status::kOk, "scaled error");
    CHECK(std::fabs(err - num / den) <= 1e-5 * (num / den), "scaled layer error %g vs by hand %g", err, num / den);
  }
  {
    std::vector<float> ones(k, 1.0f), deq(w.size());
    for (size_t i = 0; i < w.size(); ++i) deq[i] = w[i] + 0.01f * nd(rng);
    for (ActFormat act : {ActFormat::kNone, ActFormat::kInt8}) {
      double e0 = 0, e1 = 0;
      CHECK(LayerOutputError(x.data(), rows, k, w.data(), deq.data(), n, act, &e0, 1) == Status::kOk, "error");
      CHECK(LayerOutputErrorScaled(x.data(), rows, k, ones.data(), w.data(), deq.data(), n, act, &e1, 1) == Status::kOk, "error s=1");
      CHECK(std::fabs(e0 - e1) <= 1e-4 * e0, "s = 1 changes the layer error: %g vs %g", e1, e0);
    }
  }

  // 4. Refusals.
  {
    WeightQuantConfig cfg;
    Out o = Alloc(cfg, k, n);
    std::vector<float> bad = s;
    bad[7] = 0.0f;
    GptqConfig gc;
    gc.input_scale = bad.data();
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, gc, o.View(), nullptr) == Status::kInvalidArgument, "zero scale accepted");
    bad[7] = NAN;
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, gc, o.View(), nullptr) == Status::kInvalidArgument, "NaN scale accepted");
    GptqConfig grid0;
    grid0.clip_grid = 0;
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, grid0, o.View(), nullptr) == Status::kInvalidArgument, "clip_grid 0 accepted");
    GptqConfig min0;
    min0.clip_grid = 5;
    min0.clip_min = 0.0f;
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, min0, o.View(), nullptr) == Status::kInvalidArgument, "clip_min 0 accepted");
    double err = 0;
    CHECK(LayerOutputErrorScaled(x.data(), rows, k, bad.data(), w.data(), w.data(), n, ActFormat::kNone, &err) == Status::kInvalidArgument, "bad scale in error");
  }
  return Finish();
}
