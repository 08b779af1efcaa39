// The AMX tile driver (amx_tiles.h) on a scalar emulation of the AMX tile instructions, as Intel's
// ISA reference defines them (ldtilecfg palette 1, tileloadd, tdpbssd, tilestored, tilezero), checked
// bitwise against the W4A8 reference. Machines without AMX (AMD, older Intel) thereby still verify the
// unpacking, tile shapes, strides and the fp32 epilogue; the hardware path itself is tested by
// test_cpu_gemm where AMX exists. The emulator also enforces the shape rules the hardware would fault on.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/amx_tiles.h"
#include "test_cpu_gemm_util.h"

using namespace w4a8;
using namespace w4a8::cpu;
using namespace w4a8::test;

namespace {

int g_failures = 0;

struct EmulatedTiles {
  static inline bool configured = false;
  static inline int violations = 0;
  static inline uint16_t colsb[8];
  static inline uint8_t rows[8];
  static inline uint8_t data[8][16][64];

  static void Violation(const char* what) {
    if (violations++ < 5) std::printf("FAIL tile rule broken: %s\n", what);
  }
  static void Configure(const w4a8k::AmxTileConfig* cfg) {
    if (cfg->palette_id != 1) Violation("palette must be 1");
    for (int t = 0; t < 8; ++t) {
      colsb[t] = cfg->colsb[t];
      rows[t] = cfg->rows[t];
      if (rows[t] > 16 || colsb[t] > 64 || colsb[t] % 4 != 0) Violation("tile larger than 16 rows x 64 bytes");
    }
    std::memset(data, 0, sizeof(data));  // ldtilecfg zeroes all tiles
    configured = true;
  }
  template <int T>
  static void Zero() {
    if (!configured) Violation("tilezero before ldtilecfg");
    std::memset(data[T], 0, sizeof(data[T]));
  }
  template <int T>
  static void Load(const void* p, size_t stride) {
    if (!configured) Violation("tileloadd before ldtilecfg");
    std::memset(data[T], 0, sizeof(data[T]));  // bytes beyond colsb read as zero
    for (int r = 0; r < rows[T]; ++r) std::memcpy(data[T][r], (const uint8_t*)p + r * stride, colsb[T]);
  }
  template <int C, int A, int B>
  static void DotSS() {
    if (rows[C] != rows[A] || colsb[C] != colsb[B] || colsb[A] / 4 != rows[B]) Violation("tdpbssd shape mismatch");
    for (int m = 0; m < rows[C]; ++m) {
      for (int n = 0; n < colsb[C] / 4; ++n) {
        int32_t acc;
        std::memcpy(&acc, &data[C][m][4 * n], 4);
        for (int k4 = 0; k4 < colsb[A] / 4; ++k4) {
          for (int i = 0; i < 4; ++i) acc += (int32_t)(int8_t)data[A][m][4 * k4 + i] * (int8_t)data[B][k4][4 * n + i];
        }
        std::memcpy(&data[C][m][4 * n], &acc, 4);
      }
    }
  }
  template <int T>
  static void Store(void* p, size_t stride) {
    for (int r = 0; r < rows[T]; ++r) std::memcpy((uint8_t*)p + r * stride, data[T][r], colsb[T]);
  }
  static void Release() { configured = false; }
};

template <class Helpers>
void CheckCase(WeightKind kind, int32_t m, int32_t n, int32_t k, int32_t group, ActQuant act, std::mt19937& rng) {
  const RandomWeight w(kind, n, k, group, rng);
  const std::vector<float> x = RandomActivations(m, k, rng);
  const std::vector<float> bias = RandomBias(n, rng);
  std::vector<float> expected((size_t)m * n), got((size_t)m * n, -3.0f);
  GemmArgs args;
  args.m = m;
  args.x = x.data();
  args.bias = bias.data();
  args.y = expected.data();
  args.act = act;
  std::unique_ptr<PackedWeight> packed;
  if (GemmW4A8Reference(w.view(), args) != Status::kOk || Prepack(w.view(), Isa::kScalar, &packed) != Status::kOk) {
    ++g_failures;
    return;
  }
  // The same activation buffers the dispatcher builds for AMX: rows padded to a multiple of 32 with zeros.
  const CpuPackedView& v = packed->view();
  const int32_t m_rows = (m + w4a8k::kAmxRows - 1) / w4a8k::kAmxRows * w4a8k::kAmxRows;
  std::vector<int8_t> q((size_t)m_rows * v.k_padded, 0);
  std::vector<float> scale((size_t)m_rows * v.blocks_per_row, 0.0f);
  std::vector<int32_t> sum((size_t)m_rows * v.blocks_per_row, 0);
  const w4a8k::QuantizedActs acts{m, m_rows, v.k_padded, v.blocks_per_row, q.data(), scale.data(), sum.data()};
  w4a8k::QuantizeRowsScalar(x.data(), k, group, act, 0, m, acts);
  for (int32_t p = 0; p < v.n_panels; p += 2) {
    const w4a8k::Tile t{0, m, p, std::min(v.n_panels, p + 2)};
    w4a8k::AmxTileDriver<EmulatedTiles, Helpers>(v, acts, bias.data(), got.data(), t);
  }
  const int64_t bad = FirstBitDifference(expected, got);
  if (bad >= 0 && g_failures++ < 10) {
    std::printf("FAIL emulated amx (%s helpers) %s m=%d n=%d k=%d g=%d: y[%lld][%lld] = %.9g, reference %.9g\n", Helpers::kName,
                WeightKindName(kind), m, n, k, group, (long long)(bad / n), (long long)(bad % n), got[bad], expected[bad]);
  }
}


struct ScalarHelpers : w4a8k::AmxScalarHelpers {
  static constexpr const char* kName = "scalar";
};
// The AVX512 unpack and fold that the hardware path uses (they need AVX512, not AMX).
struct Avx512Helpers : w4a8k::AmxAvx512Helpers {
  static constexpr const char* kName = "avx512";
};

template <class Helpers>
int RunAll() {
  std::mt19937 rng(77);
  const WeightKind kinds[] = {WeightKind::kInt4Symmetric, WeightKind::kInt4Asymmetric, WeightKind::kFp4};
  int cases = 0;
  for (WeightKind kind : kinds) {
    for (int32_t group : {16, 32, 64, 128, 256}) {
      for (int32_t m : {16, 17, 31, 32, 45, 64}) {
        CheckCase<Helpers>(kind, m, 16 + group % 37, 300, group,
                           m % 2 ? ActQuant::kPerToken : ActQuant::kPerTokenPerGroup, rng);
        ++cases;
      }
    }
  }
  CheckCase<Helpers>(WeightKind::kInt4Asymmetric, 100, 70, 1000, 128, ActQuant::kPerTokenPerGroup, rng);
  CheckCase<Helpers>(WeightKind::kFp4, 33, 48, 64, 32, ActQuant::kPerTokenPerGroup, rng);
  return cases + 2;
}

}  // namespace

int main() {
  int cases = RunAll<ScalarHelpers>();
  if (IsaAvailable(Isa::kAvx512Vnni)) {
    cases += RunAll<Avx512Helpers>();
  } else {
    std::printf("SKIP: avx512vnni not available on this CPU (%s): AVX512 unpack/fold helpers not checked\n",
                IsaUnavailableReason(Isa::kAvx512Vnni));
  }
  g_failures += EmulatedTiles::violations;
  std::printf("%s: %d emulated AMX cases, %d failures\n", g_failures ? "FAIL" : "PASS", cases, g_failures);
  return g_failures ? 1 : 0;
}
