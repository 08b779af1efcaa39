// Low-rank correction with int8 factors (formats.h "Int8Rows"; numerics in cpu_adapters.h): the row
// quantizer against the per-token int8 definition of act_quant_def.h; LowRankAddInt8 on every ISA
// bit-exact against its scalar twin on odd shapes (tails of the 64/32-byte dots, of the 4-row groups
// of V and of the 64/32-column strips; 1 to 4 token tiles) and factors holding -128; the term close
// to (x U) V with the dequantized factors in float64; the fused GemmW4A8LowRankInt8 bit-exact against
// GemmW4A8 then LowRankAddInt8 (decode and prefill splits); the same bits for 1 and all threads
// (standalone and fused); and the refusals. ISAs the CPU lacks are skipped with the reason. Prints
// its seed.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "test_check.h"
#include "test_cpu_gemm_util.h"
#include "cpu/thread_pool.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using namespace w4a8::cpu;

namespace {

std::vector<float> Normal(std::mt19937& rng, size_t count, float sd) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(count);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Factors {
  std::vector<int8_t> ut, v;
  std::vector<float> us, vs;
  LowRankInt8Term term(int32_t k, int32_t r, int32_t n) const { return {k, r, n, ut.data(), us.data(), v.data(), vs.data()}; }
};

Factors MakeFactors(std::mt19937& rng, int32_t k, int32_t r, int32_t n) {
  Factors f;
  const std::vector<float> ut = Normal(rng, (size_t)r * k, 0.1f), v = Normal(rng, (size_t)r * n, 0.1f);
  f.ut.resize(ut.size());
  f.v.resize(v.size());
  f.us.resize(r);
  f.vs.resize(r);
  CHECK(QuantizeInt8Rows(ut.data(), r, k, f.ut.data(), f.us.data()) == Status::kOk, "quantize ut");
  CHECK(QuantizeInt8Rows(v.data(), r, n, f.v.data(), f.vs.data()) == Status::kOk, "quantize v");
  return f;
}

void TestQuantizer(std::mt19937& rng) {
  const int32_t rows = 5, cols = 37;
  std::vector<float> src = Normal(rng, (size_t)rows * cols, 2.f);
  for (int32_t j = 0; j < cols; ++j) src[(size_t)2 * cols + j] = 0.f;  // a zero row
  std::vector<int8_t> q(src.size());
  std::vector<float> s(rows);
  CHECK(QuantizeInt8Rows(src.data(), rows, cols, q.data(), s.data()) == Status::kOk, "status");
  for (int32_t i = 0; i < rows; ++i) {
    float amax = 0.f;
    for (int32_t j = 0; j < cols; ++j) amax = AbsMaxStep(amax, src[(size_t)i * cols + j]);
    const TokenScale ts = MakeTokenScale(amax, kInt8Max);
    CHECK(s[i] == ts.scale, "row %d scale %g, definition %g", i, s[i], ts.scale);
    for (int32_t j = 0; j < cols; ++j) {
      const float x = src[(size_t)i * cols + j];
      CHECK(q[(size_t)i * cols + j] == QuantizeInt8(x, ts.inverse), "row %d col %d code", i, j);
      CHECK(std::fabs(Int8RowValue(q[(size_t)i * cols + j], s[i]) - x) <= 0.5001f * s[i], "row %d col %d error", i, j);
    }
  }
  CHECK(s[2] == 0.f, "a zero row has scale 0");
  src[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK(QuantizeInt8Rows(src.data(), rows, cols, q.data(), s.data()) == Status::kNumericalError, "NaN refused");
}

// The term in float64 with the dequantized factors: what the int8 arithmetic approximates.
std::vector<double> ExactTerm(const Factors& f, int32_t k, int32_t r, int32_t n, int32_t m, const std::vector<float>& x) {
  std::vector<double> out((size_t)m * n, 0.0), t((size_t)r);
  for (int32_t i = 0; i < m; ++i) {
    for (int32_t c = 0; c < r; ++c) {
      double s = 0;
      for (int32_t kk = 0; kk < k; ++kk) s += (double)x[(size_t)i * k + kk] * Int8RowValue(f.ut[(size_t)c * k + kk], f.us[c]);
      t[c] = s;
    }
    for (int32_t j = 0; j < n; ++j)
      for (int32_t c = 0; c < r; ++c) out[(size_t)i * n + j] += t[c] * Int8RowValue(f.v[(size_t)c * n + j], f.vs[c]);
  }
  return out;
}

void TestAgainstReference(std::mt19937& rng) {
  struct Shape { int32_t k, r, n, m; };
  const Shape shapes[] = {{1, 1, 1, 1},      {15, 3, 17, 1},   {16, 1, 16, 2},   {17, 5, 63, 3},    {100, 7, 65, 7},
                          {257, 17, 130, 1}, {64, 3, 200, 8},  {129, 9, 33, 13}, {513, 11, 77, 5},  {64, 4, 64, 4},
                          {65, 6, 97, 6},    {200, 13, 31, 17}, {1000, 21, 300, 2}, {96, 8, 129, 33},
                          {16, 4099, 70, 6}};  // a rank past the AVX-512 prefill kernel's regrouped slice
  for (const Shape& sh : shapes) {
    Factors f = MakeFactors(rng, sh.k, sh.r, sh.n);
    // -128 never comes out of the quantizer, but a model file may hold it: every ISA must agree.
    f.ut[0] = -128;
    f.v[f.v.size() - 1] = -128;
    const LowRankInt8Term lr = f.term(sh.k, sh.r, sh.n);
    const std::vector<float> x = Normal(rng, (size_t)sh.m * sh.k, 1.f), y0 = Normal(rng, (size_t)sh.m * sh.n, 1.f);
    std::vector<float> ref = y0;
    CHECK(LowRankAddInt8Reference(lr, sh.m, x.data(), ref.data()) == Status::kOk, "reference status");
    for (Isa isa : AvailableIsas()) {
      std::vector<float> y = y0;
      CHECK(LowRankAddInt8(lr, sh.m, x.data(), y.data(), isa) == Status::kOk, "%s status", IsaName(isa));
      const int64_t at = test::FirstBitDifference(y, ref);
      CHECK(at < 0, "%s k=%d r=%d n=%d m=%d: y[%lld] = %.9g, reference %.9g", IsaName(isa), sh.k, sh.r, sh.n, sh.m, (long long)at,
            at < 0 ? 0.0 : y[at], at < 0 ? 0.0 : ref[at]);
    }
    // The int8 arithmetic (x and t = x U requantized per token) stays close to the exact term: about
    // 1 % rms of it on these normal inputs (half from x, half from t), bounded at 2 % rms, 5 % of the
    // largest output at worst.
    if (sh.k >= 64 && sh.r >= 4) {
      const std::vector<double> exact = ExactTerm(f, sh.k, sh.r, sh.n, sh.m, x);
      double mag = 0, worst = 0, sq_err = 0, sq = 0;
      for (size_t i = 0; i < exact.size(); ++i) mag = std::max(mag, std::fabs(exact[i]));
      for (size_t i = 0; i < exact.size(); ++i) {
        const double e = (double)ref[i] - y0[i] - exact[i];
        worst = std::max(worst, std::fabs(e));
        sq_err += e * e;
        sq += exact[i] * exact[i];
      }
      CHECK(worst <= 0.05 * mag && sq_err <= 4e-4 * sq, "k=%d r=%d n=%d m=%d: int8 term off the exact one by %.3g max (term up to %.3g), %.3g rms relative",
            sh.k, sh.r, sh.n, sh.m, worst, mag, std::sqrt(sq_err / sq));
    }
  }
}

// GemmW4A8LowRankInt8 = GemmW4A8 then LowRankAddInt8, bit for bit, on each ISA; per-group activation
// scales take the term's own quantization.
void TestFused(std::mt19937& rng) {
  struct Shape { int32_t k, r, n, m; };
  // From m = 16 (with 8 rows for each thread) the term runs inside the GEMM's tiles, below it as
  // decode does: columns off the 16-wide panels, a row tile under 4 rows (m = 133), 16 rows.
  for (const Shape& sh : {Shape{96, 5, 40, 1}, Shape{200, 9, 70, 3}, Shape{256, 13, 130, 9}, Shape{160, 4, 33, 40},
                          Shape{64, 4, 16, 16}, Shape{300, 13, 190, 70}, Shape{257, 7, 97, 133}}) {
    const Factors f = MakeFactors(rng, sh.k, sh.r, sh.n);
    const LowRankInt8Term lr = f.term(sh.k, sh.r, sh.n);
    test::RandomWeight w(test::WeightKind::kInt4Asymmetric, sh.n, sh.k, 32, rng);
    const std::vector<float> x = test::RandomActivations(sh.m, sh.k, rng), bias = test::RandomBias(sh.n, rng);
    for (Isa isa : AvailableIsas()) {
      std::unique_ptr<PackedWeight> packed;
      CHECK(Prepack(w.view(), isa, &packed) == Status::kOk, "%s prepack", IsaName(isa));
      if (!packed) continue;
      for (ActQuant act : {ActQuant::kPerToken, ActQuant::kPerTokenPerGroup}) {
        std::vector<float> fused((size_t)sh.m * sh.n), apart((size_t)sh.m * sh.n);
        GemmArgs a;
        a.m = sh.m;
        a.x = x.data();
        a.bias = bias.data();
        a.act = act;
        a.y = fused.data();
        CHECK(GemmW4A8LowRankInt8(*packed, lr, a) == Status::kOk, "%s fused status", IsaName(isa));
        a.y = apart.data();
        CHECK(GemmW4A8(*packed, a) == Status::kOk, "%s GEMM status", IsaName(isa));
        CHECK(LowRankAddInt8(lr, sh.m, x.data(), apart.data(), isa) == Status::kOk, "%s term status", IsaName(isa));
        const int64_t at = test::FirstBitDifference(fused, apart);
        CHECK(at < 0, "%s act %d k=%d r=%d n=%d m=%d: fused y[%lld] = %.9g, apart %.9g", IsaName(isa), (int)act, sh.k, sh.r, sh.n, sh.m,
              (long long)at, at < 0 ? 0.0 : fused[at], at < 0 ? 0.0 : apart[at]);
      }
      const LowRankInt8Term wrong = f.term(sh.k, sh.r, sh.n + 1);
      GemmArgs a;
      std::vector<float> y((size_t)sh.m * (sh.n + 1));
      a.m = sh.m;
      a.x = x.data();
      a.y = y.data();
      a.act = ActQuant::kPerToken;
      CHECK(GemmW4A8LowRankInt8(*packed, wrong, a) == Status::kInvalidArgument, "%s: a term of another shape is refused", IsaName(isa));
    }
  }
}

void TestThreads(std::mt19937& rng) {
  const int32_t k = 300, r = 13, n = 190;
  const Factors f = MakeFactors(rng, k, r, n);
  for (int32_t m : {1, 5, 9, 70}) {
    const std::vector<float> x = Normal(rng, (size_t)m * k, 1.f), y0 = Normal(rng, (size_t)m * n, 1.f);
    std::vector<float> y1 = y0, y2 = y0;
    SetNumThreads(1);
    CHECK(LowRankAddInt8(f.term(k, r, n), m, x.data(), y1.data(), DefaultIsa()) == Status::kOk, "1 thread");
    SetNumThreads(0);
    CHECK(LowRankAddInt8(f.term(k, r, n), m, x.data(), y2.data(), DefaultIsa()) == Status::kOk, "all threads");
    CHECK(y1 == y2, "m=%d: results differ between 1 and %d threads", m, NumThreads());
  }
  // The fused call too (its split of the term depends on the thread count).
  test::RandomWeight w(test::WeightKind::kInt4Asymmetric, n, k, 32, rng);
  std::unique_ptr<PackedWeight> packed;
  CHECK(Prepack(w.view(), DefaultIsa(), &packed) == Status::kOk && packed, "prepack");
  for (int32_t m : {1, 9, 20, 70}) {
    const std::vector<float> x = test::RandomActivations(m, k, rng);
    std::vector<float> y1((size_t)m * n), y2((size_t)m * n);
    GemmArgs a;
    a.m = m;
    a.x = x.data();
    a.act = ActQuant::kPerToken;
    SetNumThreads(1);
    a.y = y1.data();
    CHECK(GemmW4A8LowRankInt8(*packed, f.term(k, r, n), a) == Status::kOk, "fused, 1 thread");
    SetNumThreads(0);
    a.y = y2.data();
    CHECK(GemmW4A8LowRankInt8(*packed, f.term(k, r, n), a) == Status::kOk, "fused, all threads");
    CHECK(y1 == y2, "fused m=%d: results differ between 1 and %d threads", m, NumThreads());
  }
}

void TestRefusals() {
  std::vector<int8_t> q(64);
  std::vector<float> s(4, 1.f), x(16), y(16);
  LowRankInt8Term lr{16, 4, 16, q.data(), s.data(), q.data(), s.data()};
  CHECK(LowRankAddInt8(lr, 0, x.data(), y.data(), DefaultIsa()) == Status::kInvalidArgument, "m = 0");
  lr.vs = nullptr;
  CHECK(LowRankAddInt8(lr, 1, x.data(), y.data(), DefaultIsa()) == Status::kInvalidArgument, "missing scales");
  CHECK(LowRankAddInt8Reference(lr, 1, x.data(), y.data()) == Status::kInvalidArgument, "reference: missing scales");
  lr.vs = s.data();
  lr.k = (1 << 16) + 1;  // past the exact int32 range (cpu_adapters.h); never read
  CHECK(LowRankAddInt8(lr, 1, x.data(), y.data(), DefaultIsa()) == Status::kInvalidArgument, "k > 65536");
  CHECK(LowRankAddInt8Reference(lr, 1, x.data(), y.data()) == Status::kInvalidArgument, "reference: k > 65536");
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  const uint32_t seed = std::getenv("W4A8_TEST_SEED") ? (uint32_t)std::strtoul(std::getenv("W4A8_TEST_SEED"), nullptr, 10)
                                                      : std::random_device{}();
  std::printf("seed %u (W4A8_TEST_SEED=%u replays it)\n", seed, seed);
  std::mt19937 rng(seed);
  std::printf("ISAs:");
  for (Isa isa : AvailableIsas()) std::printf(" %s", IsaName(isa));
  std::printf("\n");
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni})
    if (!IsaAvailable(isa)) std::printf("SKIP: %s not available on this CPU (%s)\n", IsaName(isa), IsaUnavailableReason(isa));
  TestQuantizer(rng);
  TestAgainstReference(rng);
  TestFused(rng);
  TestThreads(rng);
  TestRefusals();
  return Finish();
}
