// Every W4A8 ISA path present on this CPU against the scalar reference, bit for bit: odd shapes (K not
// a multiple of the group, N not a multiple of the 16-channel panel, M from 1 up), every group size,
// int4 symmetric/asymmetric and fp4, both activation quantization modes, with and without bias.
// RunManyRows adds the many-row (prefill) paths on a fresh seed, printed; CheckInt16Bound the inputs that
// drive the int16 partial sums to their bound. Paths the CPU lacks print SKIP
// with the reason; if only the scalar path exists it still runs.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "test_cpu_gemm_util.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using namespace w4a8::cpu;
using namespace w4a8::test;

namespace {

int g_failures = 0;
int g_cases = 0;

void CheckCase(Isa isa, WeightKind kind, int32_t m, int32_t n, int32_t k, int32_t group, ActQuant act, bool with_bias,
               std::mt19937& rng) {
  const RandomWeight w(kind, n, k, group, rng);
  const std::vector<float> x = RandomActivations(m, k, rng);
  const std::vector<float> bias = RandomBias(n, rng);
  std::vector<float> expected((size_t)m * n, -1.0f), got((size_t)m * n, -2.0f);
  GemmArgs args;
  args.m = m;
  args.x = x.data();
  args.bias = with_bias ? bias.data() : nullptr;
  args.act = act;
  args.y = expected.data();
  ++g_cases;
  if (GemmW4A8Reference(w.view(), args) != Status::kOk) {
    if (g_failures++ < 20) std::printf("FAIL reference rejected m=%d n=%d k=%d g=%d\n", m, n, k, group);
    return;
  }
  std::unique_ptr<PackedWeight> packed;
  Status s = Prepack(w.view(), isa, &packed);
  if (s == Status::kOk) {
    args.y = got.data();
    s = GemmW4A8(*packed, args);
  }
  const int64_t bad = s == Status::kOk ? FirstBitDifference(expected, got) : 0;
  if (s != Status::kOk || bad >= 0) {
    if (g_failures++ < 20) {
      std::printf("FAIL %s %s act=%s bias=%d m=%d n=%d k=%d group=%d: status %s", IsaName(isa), WeightKindName(kind),
                  act == ActQuant::kPerToken ? "per-token" : "per-group", with_bias, m, n, k, group, StatusName(s));
      if (s == Status::kOk) {
        std::printf(", y[%lld][%lld] = %.9g, reference %.9g", (long long)(bad / n), (long long)(bad % n), got[bad],
                    expected[bad]);
      }
      std::printf("\n");
    }
  }
}

void RunIsa(Isa isa) {
  std::mt19937 rng(1234 + (int)isa);
  const WeightKind kinds[] = {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4};
  const int32_t groups[] = {16, 32, 64, 128, 256};
  const int before = g_failures, cases_before = g_cases;
  // Every small shape 1..15 in each dimension (plus 16, 17 around the panel width), rotating through
  // formats, groups, modes and bias so that each combination recurs many times.
  int combo = 0;
  for (int32_t m = 1; m <= 17; m += (m < 9 ? 1 : 2)) {
    for (int32_t n = 1; n <= 17; ++n) {
      for (int32_t k = 1; k <= 17; ++k) {
        ++combo;
        CheckCase(isa, kinds[combo % 3], m, n, k, groups[combo % 5], combo % 2 ? ActQuant::kPerToken
                                                                                : ActQuant::kPerTokenPerGroup,
                  combo % 4 != 0, rng);
      }
    }
  }
  // Larger shapes: every format x group x mode on 33x100x300 (300 is a multiple of no group size).
  for (WeightKind kind : kinds) {
    for (int32_t group : groups) {
      for (ActQuant act : {ActQuant::kPerTokenPerGroup, ActQuant::kPerToken}) {
        CheckCase(isa, kind, 33, 100, 300, group, act, true, rng);
      }
    }
  }
  // Row blocks and panel pairs at their boundaries, AMX 32-row blocks with padding, per-channel groups.
  CheckCase(isa, WeightKind::kInt4Asymmetric, 130, 50, 520, 32, ActQuant::kPerTokenPerGroup, true, rng);
  CheckCase(isa, WeightKind::kFp4, 70, 81, 1000, 256, ActQuant::kPerTokenPerGroup, false, rng);
  CheckCase(isa, WeightKind::kInt4Symmetric, 16, 48, 256, 64, ActQuant::kPerToken, true, rng);
  CheckCase(isa, WeightKind::kInt4Symmetric, 48, 40, 200, 16, ActQuant::kPerTokenPerGroup, true, rng);
  CheckCase(isa, WeightKind::kInt4Asymmetric, 1, 4096, 4096, 128, ActQuant::kPerTokenPerGroup, true, rng);
  CheckCase(isa, WeightKind::kFp4, 1, 4096, 4096, 32, ActQuant::kPerTokenPerGroup, false, rng);
  CheckCase(isa, WeightKind::kInt4Symmetric, 3, 300, 4096, 128, ActQuant::kPerToken, false, rng);
  // One and two tokens with panels left over after groups of four (7 and 8 panels: the four-stream
  // path, then a pair and a single one).
  CheckCase(isa, WeightKind::kInt4Asymmetric, 1, 100, 300, 32, ActQuant::kPerTokenPerGroup, true, rng);
  CheckCase(isa, WeightKind::kFp4, 1, 113, 520, 64, ActQuant::kPerToken, false, rng);
  CheckCase(isa, WeightKind::kInt4Symmetric, 2, 100, 260, 128, ActQuant::kPerTokenPerGroup, true, rng);
  // Activation buffers: the calls above reuse the calling thread's kept buffers with stale contents from
  // other shapes; this one (> 1 MiB of int8 rows) gets buffers of its own, and the next reuses the kept ones.
  CheckCase(isa, WeightKind::kInt4Asymmetric, 260, 40, 4100, 128, ActQuant::kPerTokenPerGroup, true, rng);
  CheckCase(isa, WeightKind::kFp4, 5, 33, 4100, 64, ActQuant::kPerToken, true, rng);
  std::printf("%s: %d cases, %d failures\n", IsaName(isa), g_cases - cases_before, g_failures - before);
}

// The many-row paths (AVX2 BigBlock from 32 rows, AVX-512 8 x 3 blocks, AMX 32-row blocks) on fresh
// random inputs: M leaving remainders of the 4- and 8-row register tiles, the 32-row blocks and 64-row tiles,
// N not a multiple of the panels, K spanning several groups with a partial last one, every format,
// groups 32/64/128, with and without bias. The seed is printed so that a failure can be replayed
// (W4A8_TEST_SEED=<seed>).
void RunManyRows(Isa isa) {
  const char* env = std::getenv("W4A8_TEST_SEED");
  const uint32_t seed = env ? (uint32_t)std::strtoul(env, nullptr, 10) : std::random_device{}();
  std::printf("%s many rows: seed %u\n", IsaName(isa), seed);
  std::mt19937 rng(seed);
  const WeightKind kinds[] = {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4};
  const int before = g_failures, cases_before = g_cases;
  int combo = 0;
  for (int32_t m : {32, 33, 34, 35, 63, 67, 97}) {
    for (WeightKind kind : kinds) {
      for (int32_t group : {32, 64, 128}) {
        ++combo;
        const int32_t n = 17 + 16 * (combo % 4) + combo % 7;        // 17..80, rarely a panel multiple
        const int32_t k = 2 * group + 8 * (1 + combo % 5) + combo % 3;  // 2 groups and a partial third
        CheckCase(isa, kind, m, n, k, group, combo % 2 ? ActQuant::kPerToken : ActQuant::kPerTokenPerGroup,
                  combo % 3 != 0, rng);
      }
    }
  }
  std::printf("%s many rows: %d cases, %d failures\n", IsaName(isa), g_cases - cases_before, g_failures - before);
}

// The int16 partial sums at their bound: every code the same (each of the 16 in turn, so the largest u8
// value of each format is among them) and every activation the same sign, so nothing cancels; a group
// of 256 holds the most chunks. The one-token path and the many-row path, bit for bit with the reference.
void CheckInt16Bound(Isa isa) {
  std::mt19937 rng(7);  // fixed: nothing here is random but the scales and zero points
  const int before = g_failures, cases_before = g_cases;
  for (WeightKind kind : {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4}) {
    for (int code = 0; code < 16; ++code) {
      RandomWeight w(kind, 33, 512, 256, rng);
      for (auto& c : w.codes) c = (uint8_t)(code | code << 4);
      for (float sign : {1.0f, -1.0f}) {
        for (int32_t m : {1, 33}) {
          const std::vector<float> x((size_t)m * w.k, sign);
          std::vector<float> expected((size_t)m * w.n, -1.0f), got((size_t)m * w.n, -2.0f);
          GemmArgs args;
          args.m = m;
          args.x = x.data();
          args.act = ActQuant::kPerToken;
          args.y = expected.data();
          ++g_cases;
          std::unique_ptr<PackedWeight> packed;
          Status s = GemmW4A8Reference(w.view(), args);
          if (s == Status::kOk) s = Prepack(w.view(), isa, &packed);
          if (s == Status::kOk) {
            args.y = got.data();
            s = GemmW4A8(*packed, args);
          }
          const int64_t bad = s == Status::kOk ? FirstBitDifference(expected, got) : 0;
          if ((s != Status::kOk || bad >= 0) && g_failures++ < 20) {
            std::printf("FAIL %s %s int16 bound: code %d, activations %+g, m=%d: status %s", IsaName(isa), WeightKindName(kind), code,
                        sign, m, StatusName(s));
            if (s == Status::kOk) std::printf(", y[%lld] = %.9g, reference %.9g", (long long)bad, got[bad], expected[bad]);
            std::printf("\n");
          }
        }
      }
    }
  }
  std::printf("%s int16 bound: %d cases, %d failures\n", IsaName(isa), g_cases - cases_before, g_failures - before);
}

// The same call with 1, 2 and 3 threads gives identical bits.
void CheckThreadCountIndependence(Isa isa) {
  std::mt19937 rng(99);
  const RandomWeight w(WeightKind::kInt4Asymmetric, 200, 700, 64, rng);
  for (int32_t m : {1, 5, 40}) {
    const std::vector<float> x = RandomActivations(m, 700, rng);
    std::unique_ptr<PackedWeight> packed;
    if (Prepack(w.view(), isa, &packed) != Status::kOk) { ++g_failures; return; }
    std::vector<float> runs[3];
    for (int threads = 1; threads <= 3; ++threads) {
      SetNumThreads(threads);
      runs[threads - 1].assign((size_t)m * 200, 0.0f);
      GemmArgs args;
      args.m = m;
      args.x = x.data();
      args.y = runs[threads - 1].data();
      if (GemmW4A8(*packed, args) != Status::kOk) ++g_failures;
    }
    SetNumThreads(0);
    if (FirstBitDifference(runs[0], runs[1]) >= 0 || FirstBitDifference(runs[0], runs[2]) >= 0) {
      ++g_failures;
      std::printf("FAIL %s: results differ between 1, 2 and 3 threads at m=%d\n", IsaName(isa), m);
    }
  }
}

// The packed layout's documented accessors (formats.h) reproduce the canonical dequantized weights, and
// the padded k of every real channel dequantizes to exactly 0.
void CheckPackedLayout() {
  std::mt19937 rng(5);
  for (WeightKind kind : {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4}) {
    for (int32_t group : {16, 64, 256}) {
      const RandomWeight w(kind, 37, 301, group, rng);
      std::unique_ptr<PackedWeight> packed;
      if (Prepack(w.view(), Isa::kScalar, &packed) != Status::kOk) { ++g_failures; continue; }
      const CpuPackedView& v = packed->view();
      int bad = 0;
      for (int32_t n = 0; n < w.n; ++n) {
        for (int32_t k = 0; k < v.k_padded; ++k) {
          const float want = k < w.k ? DequantizeAt(w.view(), n, k) : 0.0f;
          if (CpuPackedDequantizeAt(v, n, k) != want) ++bad;
        }
      }
      if (bad) {
        ++g_failures;
        std::printf("FAIL packed layout %s group %d: %d weights differ from the canonical ones\n", WeightKindName(kind),
                    group, bad);
      }
    }
  }
}

// ISA names round-trip, the default ISA is one the CPU has, and unavailable ones say why.
void CheckIsaQueries() {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    Isa parsed;
    if (!ParseIsa(IsaName(isa), &parsed) || parsed != isa) {
      ++g_failures;
      std::printf("FAIL ParseIsa(\"%s\")\n", IsaName(isa));
    }
    if (IsaAvailable(isa) == (*IsaUnavailableReason(isa) != 0)) {
      ++g_failures;
      std::printf("FAIL %s: availability and reason disagree\n", IsaName(isa));
    }
  }
  Isa parsed;
  if (ParseIsa("avx1024", &parsed) || ParseIsa(nullptr, &parsed)) {
    ++g_failures;
    std::puts("FAIL ParseIsa accepted a bad name");
  }
  if (!IsaAvailable(DefaultIsa()) || AvailableIsas().empty() || AvailableIsas().front() != Isa::kScalar) {
    ++g_failures;
    std::puts("FAIL DefaultIsa/AvailableIsas");
  }
}

void CheckInvalidArguments() {
  std::mt19937 rng(7);
  RandomWeight w(WeightKind::kInt4Asymmetric, 20, 40, 16, rng);
  std::unique_ptr<PackedWeight> packed;
  auto expect = [&](Status got, Status want, const char* what) {
    if (got != want) {
      ++g_failures;
      std::printf("FAIL %s: got %s, want %s\n", what, StatusName(got), StatusName(want));
    }
  };
  QuantizedWeight q = w.view();
  q.group_size = 48;
  expect(Prepack(q, Isa::kScalar, &packed), Status::kInvalidArgument, "group size 48");
  q = w.view();
  q.group_size = 512;
  expect(Prepack(q, Isa::kScalar, &packed), Status::kInvalidArgument, "group size 512");
  q = w.view();
  q.n = 0;
  expect(Prepack(q, Isa::kScalar, &packed), Status::kInvalidArgument, "n = 0");
  q = w.view();
  q.scales = nullptr;
  expect(Prepack(q, Isa::kScalar, &packed), Status::kInvalidArgument, "null scales");
  q = w.view();
  q.format = (WeightFormat)7;
  expect(Prepack(q, Isa::kScalar, &packed), Status::kInvalidArgument, "unknown format");
  expect(Prepack(w.view(), (Isa)9, &packed), Status::kInvalidArgument, "unknown isa");
  expect(Prepack(w.view(), Isa::kScalar, nullptr), Status::kInvalidArgument, "null out");
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (!IsaAvailable(isa)) expect(Prepack(w.view(), isa, &packed), Status::kUnsupported, "unavailable isa");
  }
  expect(Prepack(w.view(), Isa::kScalar, &packed), Status::kOk, "valid prepack");
  std::vector<float> x(3 * 40, 0.5f), y(3 * 20);
  GemmArgs args;
  args.m = 3;
  args.x = x.data();
  args.y = y.data();
  expect(GemmW4A8(*packed, args), Status::kOk, "valid call");
  args.m = 0;
  expect(GemmW4A8(*packed, args), Status::kInvalidArgument, "m = 0");
  args.m = 3;
  args.x = nullptr;
  expect(GemmW4A8(*packed, args), Status::kInvalidArgument, "null x");
  args.x = x.data();
  args.y = x.data();
  expect(GemmW4A8(*packed, args), Status::kInvalidArgument, "y aliasing x");
  args.y = y.data();
  args.act = (ActQuant)5;
  expect(GemmW4A8(*packed, args), Status::kInvalidArgument, "unknown act mode");
  args.act = ActQuant::kPerToken;
  expect(GemmW4A8WithIsa(*packed, (Isa)-1, args), Status::kInvalidArgument, "unknown isa in call");
  expect(GemmW4A8Reference(w.view(), args), Status::kOk, "reference valid call");
  args.m = -4;
  expect(GemmW4A8Reference(w.view(), args), Status::kInvalidArgument, "reference m < 0");
}

}  // namespace

int main() {
  std::printf("CPU threads: %d; default ISA: %s\n", NumThreads(), IsaName(DefaultIsa()));
  CheckIsaQueries();
  CheckInvalidArguments();
  CheckPackedLayout();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (!IsaAvailable(isa)) {
      std::printf("SKIP: %s not available on this CPU (%s)\n", IsaName(isa), IsaUnavailableReason(isa));
      continue;
    }
    RunIsa(isa);
    RunManyRows(isa);
    CheckInt16Bound(isa);
    CheckThreadCountIndependence(isa);
  }
  std::printf("%s: %d cases, %d failures\n", g_failures ? "FAIL" : "PASS", g_cases, g_failures);
  return g_failures ? 1 : 0;
}
