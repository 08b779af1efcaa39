// GPTQ: with H = I (no act order) it is exactly RTN; on correlated calibration inputs it has a lower
// output error than RTN (every format, grouped and per channel, with and without act order); its
// canonical codes decode to its dequantized weights; dead inputs get zero weights; bad H fails cleanly.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "test_check.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

using namespace w4a8;

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
static Out Alloc(const WeightQuantConfig& c, int32_t k, int32_t n) {
  Out o;
  o.codes.assign(QuantCodeBytes(c, k, n), 0xAA);
  o.scales.assign(QuantScaleCount(c, k, n), -1);
  o.zp.assign(QuantZeroPointBytes(c, k, n), 0xAA);
  o.deq.assign((size_t)k * n, NAN);
  return o;
}

int main() {
  const int32_t k = 256, n = 96;
  const int64_t s = 1024;
  std::mt19937 rng(1234);
  std::normal_distribution<float> d(0.0f, 1.0f);
  // Correlated inputs with uneven channel scales (what makes GPTQ matter).
  std::vector<float> base(s * 16), mix(16 * k), x(s * k), w((size_t)k * n);
  for (auto& v : base) v = d(rng);
  for (auto& v : mix) v = d(rng);
  GemmF32(false, false, s, k, 16, 1.0f, base.data(), 16, mix.data(), k, 0.0f, x.data(), k);
  for (int64_t r = 0; r < s; ++r)
    for (int32_t i = 0; i < k; ++i) x[r * k + i] = x[r * k + i] * (1.0f + (i % 7)) + 0.3f * d(rng);
  for (int64_t r = 0; r < s; ++r) x[r * k + 200] = 0.0f;  // a dead input channel
  for (auto& v : w) v = 0.05f * d(rng);
  std::vector<double> xd(x.begin(), x.end()), h((size_t)k * k);
  GemmF64(true, false, k, k, s, 1.0, xd.data(), k, xd.data(), k, 0.0, h.data(), k);
  std::vector<double> eye((size_t)k * k, 0.0);
  for (int32_t i = 0; i < k; ++i) eye[(size_t)i * k + i] = 1.0;

  int configs = 0;
  for (int fmt = 0; fmt < 2; ++fmt)
    for (int sym = 0; sym < 2; ++sym)
      for (int32_t g : {0, 32, 128})
        for (int act_order = 0; act_order < 2; ++act_order) {
          if (fmt == 1 && !sym) continue;
          WeightQuantConfig cfg;
          cfg.format = fmt ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4;
          cfg.symmetric = sym;
          cfg.group_size = g;
          GptqConfig gc;
          gc.act_order = act_order;
          gc.block_size = 64;
          Out rtn = Alloc(cfg, k, n), gq = Alloc(cfg, k, n);
          CHECK(QuantizeWeight(w.data(), k, n, cfg, nullptr, rtn.View()) == Status::kOk, "rtn");
          GptqResult res;
          CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, gc, gq.View(), &res, 2) == Status::kOk, "gptq");
          double e_rtn = 0, e_gptq = 0;
          LayerOutputError(x.data(), s, k, w.data(), rtn.deq.data(), n, ActFormat::kNone, &e_rtn);
          LayerOutputError(x.data(), s, k, w.data(), gq.deq.data(), n, ActFormat::kNone, &e_gptq);
          CHECK(e_gptq < 0.9 * e_rtn, "GPTQ error %g not below RTN %g (fmt=%d sym=%d g=%d act_order=%d)", e_gptq, e_rtn,
                fmt, sym, g, act_order);
          CHECK(res.dead_inputs == 1, "one dead input (got %d)", res.dead_inputs);
          bool dead_zero = true;
          for (int32_t j = 0; j < n; ++j) dead_zero &= gq.deq[(size_t)200 * n + j] == 0.0f;
          CHECK(dead_zero, "dead input row dequantizes to 0");
          QuantizedWeight qw{cfg.format, n, k, LayoutGroupSize(cfg, k), gq.codes.data(), gq.scales.data(),
                             gq.zp.empty() ? nullptr : gq.zp.data()};
          bool same = true;
          for (int32_t kk = 0; kk < k; ++kk)
            for (int32_t j = 0; j < n; ++j) same &= DequantizeAt(qw, j, kk) == gq.deq[(size_t)kk * n + j];
          CHECK(same, "canonical codes decode to the dequantized weights");
          // H = I, no act order: identical to RTN (the weight with the dead row is not involved).
          if (!act_order) {
            Out id = Alloc(cfg, k, n);
            CHECK(GptqQuantize(w.data(), k, n, eye.data(), cfg, gc, id.View(), nullptr, 1) == Status::kOk, "gptq eye");
            CHECK(id.codes == rtn.codes && id.scales == rtn.scales && id.zp == rtn.zp, "H = I differs from RTN");
            CHECK(memcmp(id.deq.data(), rtn.deq.data(), id.deq.size() * 4) == 0, "H = I dequantized differs from RTN");
          }
          if (configs == 0) std::printf("int4 asym per-channel: RTN %.4g, GPTQ %.4g\n", e_rtn, e_gptq);
          ++configs;
        }
  // Groups along N (AdaDim): H = I equals RTN, correlated H beats it.
  for (int32_t g : {0, 32}) {
    WeightQuantConfig cfg;
    cfg.grouping = Grouping::kAlongN;
    cfg.group_size = g;
    for (int act_order = 0; act_order < 2; ++act_order) {
      GptqConfig gc;
      gc.act_order = act_order;
      Out rtn = Alloc(cfg, k, n), gq = Alloc(cfg, k, n), id = Alloc(cfg, k, n);
      QuantizeWeight(w.data(), k, n, cfg, nullptr, rtn.View());
      CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, gc, gq.View(), nullptr, 2) == Status::kOk, "gptq ic");
      double e_rtn = 0, e_gptq = 0;
      LayerOutputError(x.data(), s, k, w.data(), rtn.deq.data(), n, ActFormat::kNone, &e_rtn);
      LayerOutputError(x.data(), s, k, w.data(), gq.deq.data(), n, ActFormat::kNone, &e_gptq);
      CHECK(e_gptq < 0.9 * e_rtn, "ic GPTQ error %g not below RTN %g (g=%d)", e_gptq, e_rtn, g);
      const int32_t gn = g ? g : n, nb = (n + gn - 1) / gn;
      bool decodes = true;
      for (int32_t kk = 0; kk < k; ++kk)
        for (int32_t j = 0; j < n; ++j) {
          const size_t b = (size_t)kk * nb + j / gn;
          decodes &= (float)(gq.codes[(size_t)kk * n + j] - gq.zp[b]) * gq.scales[b] == gq.deq[(size_t)kk * n + j];
        }
      CHECK(decodes, "ic codes decode to the dequantized weights");
      CHECK(GptqQuantize(w.data(), k, n, eye.data(), cfg, gc, id.View(), nullptr, 2) == Status::kOk, "gptq ic eye");
      if (!act_order) CHECK(id.codes == rtn.codes && id.scales == rtn.scales, "ic: H = I differs from RTN");
    }
  }
  // Threads do not change the result.
  {
    WeightQuantConfig cfg;
    cfg.group_size = 32;
    Out a = Alloc(cfg, k, n), b = Alloc(cfg, k, n);
    GptqQuantize(w.data(), k, n, h.data(), cfg, GptqConfig{}, a.View(), nullptr, 1);
    GptqQuantize(w.data(), k, n, h.data(), cfg, GptqConfig{}, b.View(), nullptr, 2);
    CHECK(a.codes == b.codes && a.deq == b.deq, "1 thread vs 2 threads differ");
  }
  // An fp32 Hessian is read in place: the same result as the fp64 path fed its widened values
  // (act order and awq+gptq's input scale included), and NaN in it fails the same way.
  {
    std::vector<float> h32(h.begin(), h.end());
    std::vector<double> widened(h32.begin(), h32.end());
    std::vector<float> scale(k);
    for (int32_t i = 0; i < k; ++i) scale[i] = 0.5f + (float)(i % 5) * 0.25f;
    for (int variant = 0; variant < 3; ++variant) {
      WeightQuantConfig cfg;
      cfg.group_size = 32;
      GptqConfig gc;
      gc.act_order = variant == 1;
      if (variant == 2) gc.input_scale = scale.data();
      Out a = Alloc(cfg, k, n), b = Alloc(cfg, k, n);
      CHECK(GptqQuantize(w.data(), k, n, h32.data(), cfg, gc, a.View(), nullptr, 2) == Status::kOk, "gptq fp32 H");
      CHECK(GptqQuantize(w.data(), k, n, widened.data(), cfg, gc, b.View(), nullptr, 2) == Status::kOk, "gptq widened H");
      CHECK(a.codes == b.codes && a.scales == b.scales && a.deq == b.deq, "fp32 Hessian differs from its fp64 widening");
    }
    Out o = Alloc(WeightQuantConfig{}, k, n);
    h32[7] = NAN;
    CHECK(GptqQuantize(w.data(), k, n, h32.data(), WeightQuantConfig{}, GptqConfig{}, o.View(), nullptr) == Status::kNumericalError, "NaN fp32 H");
  }
  // factor_f32 (GPTQ's largest Hessians): H factored in fp32 gives what the fp64 factorization
  // gives up to fp32 rounding of U: nearly all codes equal, the output error within 2 %.
  for (int act_order = 0; act_order < 2; ++act_order) {
    WeightQuantConfig cfg;
    cfg.group_size = 32;
    GptqConfig gc;
    gc.act_order = act_order;
    GptqConfig gf = gc;
    gf.factor_f32 = true;
    std::vector<float> h32(h.begin(), h.end());
    Out a = Alloc(cfg, k, n), b = Alloc(cfg, k, n);
    GptqResult ra, rb;
    CHECK(GptqQuantize(w.data(), k, n, h32.data(), cfg, gc, a.View(), &ra, 2) == Status::kOk, "gptq fp64 factor");
    CHECK(GptqQuantize(w.data(), k, n, h32.data(), cfg, gf, b.View(), &rb, 2) == Status::kOk, "gptq fp32 factor");
    size_t same = 0;
    for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
    double ea = 0, eb = 0;
    LayerOutputError(x.data(), s, k, w.data(), a.deq.data(), n, ActFormat::kNone, &ea);
    LayerOutputError(x.data(), s, k, w.data(), b.deq.data(), n, ActFormat::kNone, &eb);
    std::printf("factor_f32 act_order=%d: %.4f of code bytes equal, output error %.6g vs %.6g (fp64 factor)\n", act_order,
                (double)same / a.codes.size(), eb, ea);
    CHECK(same >= 0.98 * a.codes.size(), "fp32 factorization changed %zu of %zu code bytes", a.codes.size() - same, a.codes.size());
    CHECK(std::fabs(eb - ea) <= 0.02 * ea, "fp32 factorization output error %g vs %g", eb, ea);
    CHECK(rb.dead_inputs == 1, "fp32 factorization: one dead input (got %d)", rb.dead_inputs);
  }
  // Non-finite H or W fails with a status, no crash.
  {
    WeightQuantConfig cfg;
    Out o = Alloc(cfg, k, n);
    auto bad = h;
    bad[5] = NAN;
    CHECK(GptqQuantize(w.data(), k, n, bad.data(), cfg, GptqConfig{}, o.View(), nullptr) == Status::kNumericalError, "NaN H");
    GptqConfig zero_block;
    zero_block.block_size = 0;
    CHECK(GptqQuantize(w.data(), k, n, h.data(), cfg, zero_block, o.View(), nullptr) == Status::kInvalidArgument, "block 0");
  }
  std::printf("%d GPTQ configurations\n", configs);
  return Finish();
}
