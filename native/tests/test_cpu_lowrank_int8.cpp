// Low-rank correction with int8 factors (formats.h "Int8Rows"): the row quantizer against the
// per-token int8 definition of act_quant_def.h; LowRankAddInt8 on every ISA against its float64
// twin on odd shapes (tails of the 16-lane dot and of the 64/16-column strips, the decode path below
// 8 rows and the GEMM path from 8), bit-exact across ISAs and thread counts on the decode path;
// and the refusals. Prints its seed.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "test_check.h"
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

void TestAgainstReference(std::mt19937& rng) {
  struct Shape { int32_t k, r, n, m; };
  const Shape shapes[] = {{1, 1, 1, 1},     {15, 3, 17, 1},   {16, 1, 16, 2},    {17, 5, 63, 3},   {100, 7, 65, 7},
                          {257, 17, 130, 1}, {64, 3, 200, 8}, {129, 9, 33, 13},  {513, 11, 77, 5}};
  for (const Shape& sh : shapes) {
    const Factors f = MakeFactors(rng, sh.k, sh.r, sh.n);
    const LowRankInt8Term lr = f.term(sh.k, sh.r, sh.n);
    const std::vector<float> x = Normal(rng, (size_t)sh.m * sh.k, 1.f), y0 = Normal(rng, (size_t)sh.m * sh.n, 1.f);
    std::vector<float> ref = y0;
    CHECK(LowRankAddInt8Reference(lr, sh.m, x.data(), ref.data()) == Status::kOk, "reference status");
    // Scale of the term, for a relative bound: sum_c |T_c| |V_c| per output.
    double scale = 1e-30;
    for (size_t i = 0; i < ref.size(); ++i) scale = std::max(scale, (double)std::fabs(ref[i] - y0[i]));
    std::vector<float> first;
    for (Isa isa : AvailableIsas()) {
      std::vector<float> y = y0;
      CHECK(LowRankAddInt8(lr, sh.m, x.data(), y.data(), isa) == Status::kOk, "%s status", IsaName(isa));
      double worst = 0;
      for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs((double)y[i] - ref[i]) / (scale + std::fabs(ref[i])));
      CHECK(worst < 2e-5, "%s k=%d r=%d n=%d m=%d: worst relative difference %g", IsaName(isa), sh.k, sh.r, sh.n, sh.m, worst);
      if (sh.m < 8) {
        if (first.empty()) first = y;
        else CHECK(y == first, "%s differs bitwise from %s (decode path), k=%d r=%d n=%d m=%d", IsaName(isa), IsaName(AvailableIsas()[0]), sh.k, sh.r, sh.n, sh.m);
      }
    }
  }
}

void TestThreads(std::mt19937& rng) {
  const int32_t k = 300, r = 13, n = 190;
  const Factors f = MakeFactors(rng, k, r, n);
  for (int32_t m : {1, 5, 9}) {
    const std::vector<float> x = Normal(rng, (size_t)m * k, 1.f), y0 = Normal(rng, (size_t)m * n, 1.f);
    std::vector<float> y1 = y0, y2 = y0;
    SetNumThreads(1);
    CHECK(LowRankAddInt8(f.term(k, r, n), m, x.data(), y1.data(), DefaultIsa()) == Status::kOk, "1 thread");
    SetNumThreads(0);
    CHECK(LowRankAddInt8(f.term(k, r, n), m, x.data(), y2.data(), DefaultIsa()) == Status::kOk, "all threads");
    CHECK(y1 == y2, "m=%d: results differ between 1 and %d threads", m, NumThreads());
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
  TestThreads(rng);
  TestRefusals();
  return Finish();
}
