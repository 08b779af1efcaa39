// AWQ: on inputs with outlier channels the search picks alpha > 0 and lowers the layer output error
// below RTN; its reported errors agree with LayerOutputError on (X / s, diag(s) W); alpha 0 is RTN;
// the clip ratios come from the grid; several layers sharing an input get one set of scales.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "test_check.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/quant.h"

using namespace w4a8;

struct Out {
  std::vector<uint8_t> codes, zp;
  std::vector<float> scales, deq, clip;
};

int main() {
  const int64_t s = 384;
  const int32_t k = 256;
  const int32_t ns[2] = {64, 96};
  std::mt19937 rng(99);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(s * k);
  for (int64_t r = 0; r < s; ++r)
    for (int32_t i = 0; i < k; ++i) x[r * k + i] = d(rng) * (i % 37 == 0 ? 30.0f : 1.0f);  // salient channels
  std::vector<std::vector<float>> w(2);
  for (int l = 0; l < 2; ++l) {
    w[l].resize((size_t)k * ns[l]);
    for (auto& v : w[l]) v = 0.02f * d(rng);
  }
  for (ActFormat act : {ActFormat::kNone, ActFormat::kInt8}) {
    WeightQuantConfig cfg;
    cfg.group_size = 64;
    AwqConfig ac;
    ac.act = act;
    std::vector<Out> outs(2);
    std::vector<AwqLayer> layers(2);
    for (int l = 0; l < 2; ++l) {
      Out& o = outs[l];
      o.codes.assign(QuantCodeBytes(cfg, k, ns[l]), 0);
      o.scales.assign(QuantScaleCount(cfg, k, ns[l]), 0);
      o.zp.assign(QuantZeroPointBytes(cfg, k, ns[l]), 0);
      o.deq.assign((size_t)k * ns[l], 0);
      o.clip.assign(QuantScaleCount(cfg, k, ns[l]), 0);
      layers[l].w = w[l].data();
      layers[l].n = ns[l];
      layers[l].out.codes = o.codes.data();
      layers[l].out.scales = o.scales.data();
      layers[l].out.zero_points = o.zp.data();
      layers[l].out.dequantized = o.deq.data();
      layers[l].group_clip = o.clip.data();
    }
    std::vector<float> scales(k);
    AwqResult res;
    CHECK(AwqSearch(x.data(), s, k, nullptr, layers.data(), 2, cfg, ac, scales.data(), &res, 2) == Status::kOk, "awq");
    std::printf("act=%d alpha %.2f error before %.5g after scale %.5g after clip %.5g (clipped %d)\n", (int)act, res.alpha,
                res.error_before, res.error_after_scale, res.error_after, res.clipped);
    CHECK(res.alpha > 0, "alpha > 0 with salient channels");
    CHECK(res.error_after_scale < 0.9 * res.error_before, "scaling lowers the error");
    CHECK(res.error_after <= res.error_after_scale, "clip never raises the final error");
    float smax = 0, smin = INFINITY;
    for (float v : scales) {
      smax = std::max(smax, v);
      smin = std::min(smin, v);
    }
    CHECK(std::fabs(std::sqrt((double)smax * smin) - 1.0) < 1e-5, "scales normalised by sqrt(max min)");
    CHECK(scales[0] > scales[1], "salient channel 0 gets a larger scale");
    // error_before is plain RTN of W.
    for (int l = 0; l < 2; ++l) {
      Out rtn;
      rtn.codes.assign(QuantCodeBytes(cfg, k, ns[l]), 0);
      rtn.scales.assign(QuantScaleCount(cfg, k, ns[l]), 0);
      rtn.zp.assign(QuantZeroPointBytes(cfg, k, ns[l]), 0);
      rtn.deq.assign((size_t)k * ns[l], 0);
      QuantizedOutputs qo{rtn.codes.data(), rtn.scales.data(), rtn.zp.data(), rtn.deq.data()};
      QuantizeWeight(w[l].data(), k, ns[l], cfg, nullptr, qo);
      double e = 0;
      LayerOutputError(x.data(), s, k, w[l].data(), rtn.deq.data(), ns[l], act, &e);
      CHECK(std::fabs(e - layers[l].error_before) < 1e-3 * e, "layer %d before %g vs RTN %g", l, layers[l].error_before, e);
      // error_after is the output error of Qa(X/s) @ deq against (X/s)(sW) = X W.
      std::vector<float> xs(s * k), ws((size_t)k * ns[l]);
      for (int64_t r = 0; r < s; ++r)
        for (int32_t i = 0; i < k; ++i) xs[r * k + i] = x[r * k + i] / scales[i];
      for (int32_t i = 0; i < k; ++i)
        for (int32_t j = 0; j < ns[l]; ++j) ws[(size_t)i * ns[l] + j] = w[l][(size_t)i * ns[l] + j] * scales[i];
      double e2 = 0;
      LayerOutputError(xs.data(), s, k, ws.data(), outs[l].deq.data(), ns[l], act, &e2);
      CHECK(std::fabs(e2 - layers[l].error_after) < 1e-3 * e2, "layer %d after %g vs recomputed %g", l,
            layers[l].error_after, e2);
      for (float c : outs[l].clip) {
        const float step = (1.0f - 0.5f) / 10.0f;
        const float idx = (1.0f - c) / step;
        CHECK(c >= 0.5f - 1e-6f && c <= 1.0f && std::fabs(idx - std::nearbyint(idx)) < 1e-3f, "clip %g off the grid", c);
      }
    }
  }
  // Int8 activations scored by the W4A8 kernels: the reported errors are those of GemmW4A8Reference
  // on X/s and the returned canonical codes; the duo family never loses to the mean|x| family alone.
  for (cpu::ActQuant mode : {cpu::ActQuant::kPerTokenPerGroup, cpu::ActQuant::kPerToken}) {
    WeightQuantConfig cfg;
    cfg.group_size = 32;
    const int32_t n = ns[0];
    std::vector<uint8_t> codes(QuantCodeBytes(cfg, k, n)), zp(QuantZeroPointBytes(cfg, k, n));
    std::vector<float> sc(QuantScaleCount(cfg, k, n)), deq((size_t)k * n), scales(k);
    AwqLayer L;
    L.w = w[0].data();
    L.n = n;
    L.out = QuantizedOutputs{codes.data(), sc.data(), zp.data(), deq.data()};
    AwqConfig ac;
    ac.act = ActFormat::kInt8;
    ac.kernel_act = mode == cpu::ActQuant::kPerToken ? 1 : 0;
    AwqResult res;
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, ac, scales.data(), &res, 2) == Status::kOk, "kernel awq");
    CHECK(res.error_after <= res.error_before, "kernel awq not worse than RTN");
    std::vector<float> xs(s * k), y((size_t)s * n), yref((size_t)s * n, 0.0f);
    for (int64_t r = 0; r < s; ++r)
      for (int32_t i = 0; i < k; ++i) xs[r * k + i] = x[r * k + i] / scales[i];
    QuantizedWeight qw{cfg.format, n, k, 32, codes.data(), sc.data(), zp.data()};
    cpu::GemmArgs ga;
    ga.m = (int32_t)s;
    ga.x = xs.data();
    ga.y = y.data();
    ga.act = mode;
    CHECK(cpu::GemmW4A8Reference(qw, ga) == Status::kOk, "reference gemm");
    double num = 0, den = 0;
    for (int64_t r = 0; r < s; ++r)
      for (int32_t j = 0; j < n; ++j) {
        double ref = 0;
        for (int32_t i = 0; i < k; ++i) ref += (double)x[r * k + i] * w[0][(size_t)i * n + j];
        num += (ref - y[r * n + j]) * (ref - y[r * n + j]);
        den += ref * ref;
      }
    CHECK(std::fabs(num / den - L.error_after) < 1e-3 * L.error_after, "kernel error %g vs reference %g", L.error_after,
          num / den);
    AwqConfig x_only = ac;
    x_only.duo_scaling = false;
    x_only.clip_grid = 1;
    AwqConfig both = x_only;
    both.duo_scaling = true;
    AwqResult rx, rb;
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, x_only, scales.data(), &rx, 2) == Status::kOk, "x only");
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, both, scales.data(), &rb, 2) == Status::kOk, "both");
    CHECK(!rx.duo_scaling && rb.error_after_scale <= rx.error_after_scale, "duo family searched as a superset");
    AwqConfig bad = ac;
    bad.act = ActFormat::kFp8E4M3;
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, bad, scales.data(), &res) == Status::kInvalidArgument,
          "kernel scoring needs int8 activations");
  }
  // Per-channel quantization and fp4 run too; bad arguments fail with a status.
  {
    WeightQuantConfig cfg;
    cfg.format = WeightFormat::kFp4E2M1;
    cfg.symmetric = true;
    cfg.group_size = 0;
    std::vector<uint8_t> codes(QuantCodeBytes(cfg, k, 64));
    std::vector<float> sc(QuantScaleCount(cfg, k, 64)), deq((size_t)k * 64), scales(k);
    AwqLayer L;
    L.w = w[0].data();
    L.n = 64;
    L.out.codes = codes.data();
    L.out.scales = sc.data();
    L.out.dequantized = deq.data();
    AwqResult res;
    AwqConfig ac;
    ac.grid_size = 5;
    ac.clip_grid = 3;
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, ac, scales.data(), &res) == Status::kOk, "per-channel fp4");
    CHECK(res.error_after <= res.error_before, "per-channel fp4 not worse");
    // Groups along N: scale search only.
    WeightQuantConfig ic;
    ic.grouping = Grouping::kAlongN;
    ic.group_size = 32;
    std::vector<uint8_t> icodes(QuantCodeBytes(ic, k, 64)), izp(QuantZeroPointBytes(ic, k, 64));
    std::vector<float> isc(QuantScaleCount(ic, k, 64)), iclip(QuantScaleCount(ic, k, 64));
    AwqLayer IL;
    IL.w = w[0].data();
    IL.n = 64;
    IL.out = QuantizedOutputs{icodes.data(), isc.data(), izp.data(), deq.data()};
    IL.group_clip = iclip.data();
    CHECK(AwqSearch(x.data(), s, k, nullptr, &IL, 1, ic, ac, scales.data(), &res) == Status::kOk, "ic awq");
    CHECK(res.error_after < res.error_before && !res.clipped, "ic awq lowers the error without clipping");
    ac.grid_size = 0;
    CHECK(AwqSearch(x.data(), s, k, nullptr, &L, 1, cfg, ac, scales.data(), &res) == Status::kInvalidArgument, "grid 0");
  }
  return Finish();
}
