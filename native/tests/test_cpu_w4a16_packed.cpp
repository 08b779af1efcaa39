// W4A16 on the packed weight (GemmW4A16Packed): the scalar twin against the canonical reference's
// float64 truth, a hand-built case that pins every nibble position of a chunk, and each available
// ISA's kernel against the truth on odd shapes (N not a multiple of 16, K not a multiple of 8 or of the
// group), int4 with and without zero points, fp4, with and without bias, M from 1 to 29 (every token
// tile), fresh random inputs with tiny and large activations mixed in.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"
#include "test_check.h"
#include "test_cpu_gemm_util.h"

using namespace w4a8;
using namespace w4a8::cpu;
using test::RandomWeight;
using test::WeightKind;

namespace {

// Normal activations, with a few outliers (x 1000) and a few tiny ones (1e-33: their scaled copies
// are below the normal floats, which the kernels drop) among them.
std::vector<float> RandomActs(std::mt19937& rng, size_t count) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<float> v(count);
  for (auto& x : v) {
    x = d(rng);
    const int p = pick(rng);
    if (p == 0) x *= 1000.f;
    if (p == 1) x *= 1e-33f;
  }
  return v;
}

// |y - truth| <= tol * (the size of the terms summed + |bias|), elementwise. The int4 kernels sum
// q x and take zp s sum(x) off per group (as the canonical GEMV does), so their terms are
// |x| (q + zp) s <= 30 |x| s, not |x w|: where q is near zp the two sums cancel.
double WorstRelative(const QuantizedWeight& w, int32_t m, const float* x, const float* y, const double* truth, const float* bias) {
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  double worst = 0;
  for (int32_t t = 0; t < m; ++t)
    for (int32_t n = 0; n < w.n; ++n) {
      double magnitude = 1e-30 + (bias ? std::fabs(bias[n]) : 0.0);
      for (int32_t k = 0; k < w.k; ++k) {
        const double xk = std::fabs((double)x[(size_t)t * w.k + k]);
        magnitude += w.format == WeightFormat::kInt4 ? xk * 30.0 * w.scales[(size_t)n * blocks + k / w.group_size]
                                                     : xk * std::fabs(DequantizeAt(w, n, k));
      }
      const double want = truth[(size_t)t * w.n + n] + (bias ? bias[n] : 0.0);
      worst = std::max(worst, std::fabs((double)y[(size_t)t * w.n + n] - want) / magnitude);
    }
  return worst;
}

// One row, k = 16, group 16, int4 with zero point 8: code j + 1 at k = j (k = 15: code 0), x[k] = 2^k.
// Every nibble position of both chunks contributes a different power of two, so a position read
// from the wrong k, or scaled by the wrong power, changes the exact result.
void TestEveryPosition() {
  std::vector<uint8_t> codes(8);
  for (int j = 0; j < 16; ++j) codes[j / 2] |= (uint8_t)(((j + 1) & 15) << (4 * (j % 2)));
  const float scale = 0.5f;
  QuantizedWeight w{WeightFormat::kInt4, 1, 16, 16, codes.data(), &scale, nullptr};
  std::vector<float> x(16);
  double want = 0;
  for (int k = 0; k < 16; ++k) {
    x[k] = std::ldexp(1.0f, k);
    want += (double)x[k] * (((k + 1) & 15) - 8) * 0.5;
  }
  std::unique_ptr<PackedWeight> packed;
  CHECK(Prepack(w, DefaultIsa(), &packed) == Status::kOk, "prepack");
  GemmArgs a;
  a.m = 1;
  a.x = x.data();
  for (Isa isa : AvailableIsas()) {
    float y = NAN;
    a.y = &y;
    CHECK(GemmW4A16Packed(*packed, isa, a) == Status::kOk, "%s status", IsaName(isa));
    CHECK((double)y == want, "%s: every nibble position: got %.1f, want %.1f", IsaName(isa), y, want);
  }
}

void TestShapes(std::mt19937& rng) {
  const int32_t ns[] = {1, 15, 17, 50};
  const int32_t ks[] = {16, 33, 100, 257};
  const int32_t gss[] = {16, 32, 64, 128, 256};
  const int32_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 29, 33, 47};  // every tile of 8 (AVX-512) and 4 (AVX2), their tails; fp32 panels past 16 (AVX2) and 32 (AVX-512)
  int cases = 0;
  for (int32_t n : ns)
    for (int32_t k : ks)
      for (int32_t gs : gss) {
        const int32_t m = ms[cases % 14];
        ++cases;
        const WeightKind kind = cases % 3 == 2 ? WeightKind::kFp4 : cases % 3 == 0 ? WeightKind::kInt4Asymmetric : WeightKind::kInt4Symmetric;
        const RandomWeight rw(kind, n, k, gs, rng);
        const QuantizedWeight w = rw.view();
        std::unique_ptr<PackedWeight> packed;
        CHECK(Prepack(w, DefaultIsa(), &packed) == Status::kOk, "prepack");
        std::vector<float> x = RandomActs(rng, (size_t)m * k), bias = RandomActs(rng, n);
        const float* b = (cases % 2) ? bias.data() : nullptr;
        std::vector<double> truth((size_t)m * n);
        CHECK(GemmDequantizedF64(w, m, x.data(), truth.data()) == Status::kOk, "f64 status");
        GemmArgs a;
        a.m = m;
        a.x = x.data();
        a.bias = b;
        for (Isa isa : AvailableIsas()) {
          std::vector<float> y((size_t)m * n, NAN);
          a.y = y.data();
          CHECK(GemmW4A16Packed(*packed, isa, a) == Status::kOk, "%s status", IsaName(isa));
          const double err = WorstRelative(w, m, x.data(), y.data(), truth.data(), b);
          // The scalar twin sums in float64; the kernels in fp32 over k terms (a few ulps times sqrt(k)).
          const double tol = isa == Isa::kScalar ? 1e-6 : 2e-6 * k;
          CHECK(err < tol, "%s n=%d k=%d gs=%d m=%d %s: rel err %g", IsaName(isa), n, k, gs, m, test::WeightKindName(kind), err);
        }
      }
}

void TestThreadCountIndependence(std::mt19937& rng) {
  const RandomWeight rw(WeightKind::kInt4Asymmetric, 203, 384, 128, rng);
  std::unique_ptr<PackedWeight> packed;
  CHECK(Prepack(rw.view(), DefaultIsa(), &packed) == Status::kOk, "prepack");
  std::vector<float> x = RandomActs(rng, 7 * 384);
  std::vector<float> y1(7 * 203), y2(7 * 203);
  GemmArgs a;
  a.m = 7;
  a.x = x.data();
  SetNumThreads(1);
  a.y = y1.data();
  CHECK(GemmW4A16Packed(*packed, DefaultIsa(), a) == Status::kOk, "1 thread");
  SetNumThreads(0);
  a.y = y2.data();
  CHECK(GemmW4A16Packed(*packed, DefaultIsa(), a) == Status::kOk, "all threads");
  CHECK(y1 == y2, "results differ between 1 and %d threads", NumThreads());
}

void TestRejects() {
  uint8_t codes[8] = {};
  float scale = 1.f, x[16] = {}, y[1] = {};
  QuantizedWeight ok{WeightFormat::kInt4, 1, 16, 16, codes, &scale, nullptr};
  std::unique_ptr<PackedWeight> packed;
  CHECK(Prepack(ok, DefaultIsa(), &packed) == Status::kOk, "prepack");
  GemmArgs a;
  a.m = 0;
  a.x = x;
  a.y = y;
  CHECK(GemmW4A16Packed(*packed, DefaultIsa(), a) == Status::kInvalidArgument, "m = 0 accepted");
  a.m = 1;
  a.x = nullptr;
  CHECK(GemmW4A16Packed(*packed, DefaultIsa(), a) == Status::kInvalidArgument, "null x accepted");
  a.x = x;
  CHECK(GemmW4A16Packed(*packed, (Isa)7, a) == Status::kUnsupported, "ISA 7 accepted");
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
  TestEveryPosition();
  TestShapes(rng);
  TestRejects();
  TestThreadCountIndependence(rng);  // last: it resizes the shared thread pool
  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
