// Activation fake quantization: E4M3FN conversion (the one codec, act_quant_def.h) equals a
// brute-force nearest-even search over all 256 codes (plus saturation), int8 follows round-half-even
// of x * (127 / absmax) clamped to +-127 (the kernels' numerics, not x / scale), the threaded path
// equals the reference, zero rows stay zero.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "w4a8/act_quant_def.h"
#include "test_check.h"
#include "w4a8/quant.h"

using namespace w4a8;

// Nearest finite E4M3FN value by exhaustive search; ties -> even code; beyond 448 -> 448.
static float NearestE4M3(float x) {
  if (std::fabs(x) >= 448.0f) return std::copysign(448.0f, x);
  float best = 0;
  double best_d = INFINITY;
  int best_code = 0;
  for (int c = 0; c < 256; ++c) {
    const float v = E4M3ToFloat((uint8_t)c);
    if (std::isnan(v)) continue;
    const double d = std::fabs((double)v - (double)x);
    if (d < best_d || (d == best_d && (c & 1) == 0 && (best_code & 1) == 1)) {
      best_d = d;
      best = v;
      best_code = c;
    }
  }
  return best == 0 ? std::copysign(0.0f, x) : best;
}

static void TestE4M3() {
  // Every code round-trips.
  for (int c = 0; c < 256; ++c) {
    const float v = E4M3ToFloat((uint8_t)c);
    if (std::isnan(v)) continue;
    const uint8_t back = FloatToE4M3(v);
    CHECK(back == c || (v == 0 && (back & 0x7f) == 0), "code %d -> %g -> %d", c, v, back);
  }
  CHECK(E4M3ToFloat(0x7e) == 448.0f, "max 448");
  CHECK(E4M3ToFloat(0x01) == std::ldexp(1.0f, -9), "min subnormal 2^-9");
  // Midpoints between neighbours, and random values over the whole range, match the search.
  std::vector<float> probes;
  for (int c = 0; c < 126; ++c) {
    const float a = E4M3ToFloat((uint8_t)c), b = E4M3ToFloat((uint8_t)(c + 1));
    probes.push_back(0.5f * (a + b));
    probes.push_back(std::nextafter(0.5f * (a + b), 0.0f));
    probes.push_back(std::nextafter(0.5f * (a + b), 1000.0f));
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> e(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) probes.push_back(std::exp2(e(rng)) * (i & 1 ? -1.0f : 1.0f));
  for (float x : {450.0f, 463.9f, 464.0f, 470.0f, 1e6f, -1e30f, INFINITY, -INFINITY, 0.0f, -0.0f}) probes.push_back(x);
  int bad = 0;
  for (float x : probes) {
    const float got = E4M3ToFloat(FloatToE4M3(x));
    const float want = NearestE4M3(x);
    if (got != want) {
      if (bad < 5) std::printf("  e4m3(%.9g) = %g, want %g\n", x, got, want);
      ++bad;
    }
  }
  CHECK(bad == 0, "%d E4M3 conversions disagree with the exhaustive search", bad);
  CHECK(std::isnan(E4M3ToFloat(FloatToE4M3(NAN))), "NaN stays NaN");
}

static void TestFakeQuant() {
  const int64_t m = 37, k = 300;
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(m * k);
  for (auto& v : x) v = d(rng);
  for (int64_t i = 0; i < k; ++i) x[5 * k + i] = 0.0f;  // a zero row
  x[7 * k + 3] = 200.0f;                                 // an outlier token
  for (ActFormat fmt : {ActFormat::kInt8, ActFormat::kFp8E4M3}) {
    std::vector<float> fast(m * k), ref(m * k), s_fast(m), s_ref(m);
    CHECK(FakeQuantActivations(x.data(), m, k, fmt, fast.data(), s_fast.data(), 2) == Status::kOk, "fast");
    CHECK(FakeQuantActivationsRef(x.data(), m, k, fmt, ref.data(), s_ref.data()) == Status::kOk, "ref");
    CHECK(memcmp(fast.data(), ref.data(), fast.size() * 4) == 0, "fast != ref");
    for (int64_t r = 0; r < m; ++r) {
      float absmax = 0;
      for (int64_t i = 0; i < k; ++i) absmax = std::max(absmax, std::fabs(x[r * k + i]));
      const float qmax = fmt == ActFormat::kInt8 ? 127.0f : 448.0f;
      const float scale = absmax / qmax, inv = absmax > 0 ? qmax / absmax : 0.0f;
      CHECK(s_ref[r] == scale, "row scale");
      for (int64_t i = 0; i < k; ++i) {
        const float v = x[r * k + i];
        float want;
        if (scale == 0) want = 0;
        else if (fmt == ActFormat::kInt8) want = std::min(127.0f, std::max(-127.0f, std::nearbyint(v * inv))) * scale;
        else want = NearestE4M3(v * inv) * scale;
        if (ref[r * k + i] != want) {
          CHECK(false, "row %lld col %lld: %g -> %g want %g", (long long)r, (long long)i, v, ref[r * k + i], want);
          break;
        }
      }
    }
    // The row absmax is exact after fake quantization (it maps to +-127 or +-448).
    CHECK(std::fabs(fast[7 * k + 3] - 200.0f) < 1e-4f, "outlier preserved");
  }
  // int8 round half to even: 2.5 * scale -> 2 * scale.
  std::vector<float> row = {127.0f, 2.5f, 3.5f, -2.5f};
  std::vector<float> out(4);
  FakeQuantActivationsRef(row.data(), 1, 4, ActFormat::kInt8, out.data(), nullptr);
  CHECK(out[1] == 2.0f && out[2] == 4.0f && out[3] == -2.0f, "ties to even (%g %g %g)", out[1], out[2], out[3]);
  // x * inv, not x / scale: find values where the two round differently and check that the
  // quantizer follows the multiplication (the kernels' definition), so the sites cannot drift apart.
  // Such values sit next to the rounding ties (n + 0.5) * scale: probe a few ulps around them.
  std::mt19937 rng2(17);
  std::uniform_real_distribution<float> u(0.5f, 20.0f);
  int differing = 0;
  for (int trial = 0; trial < 100000 && differing < 20; ++trial) {
    const float amax = u(rng2), scale = amax / 127.0f, inv = 127.0f / amax;
    float v = (float)((trial % 126) + 0.5) * scale;
    for (int step = 0; step < 4; ++step, v = std::nextafter(v, 0.0f)) {
      const float by_mul = std::nearbyint(v * inv), by_div = std::nearbyint(v / scale);
      if (by_mul == by_div) continue;
      ++differing;
      const float pair[2] = {amax, v};
      float got[2];
      FakeQuantActivationsRef(pair, 1, 2, ActFormat::kInt8, got, nullptr);
      CHECK(got[1] == by_mul * scale && got[1] == FakeQuantInt8(v, MakeTokenScale(amax, kInt8Max)),
            "x=%.9g amax=%.9g: %g, want round(x * inv) * scale = %g", v, amax, got[1], by_mul * scale);
    }
  }
  CHECK(differing > 0, "no value found where x * inv and x / scale round apart");
  // The symmetric range: -128 is never produced, even past the row's own amax (a group of the kernels).
  CHECK(QuantizeInt8Value(-1000.0f, 1.0f) == -127.0f && QuantizeInt8Value(1000.0f, 1.0f) == 127.0f, "clamp to +-127");
  CHECK(std::signbit(QuantizeInt8Value(-0.2f, 1.0f)), "round keeps the sign of zero (as ONNX Round)");
  // A row whose amax is denormal: qmax / amax overflows; the capped inverse keeps zeros zero (no
  // 0 * inf = NaN): int8 rounds the row to zeros, fp8 keeps finite values of the right sign.
  for (ActFormat fmt : {ActFormat::kInt8, ActFormat::kFp8E4M3}) {
    const float tiny[4] = {1e-40f, -3e-41f, 0.0f, -0.0f};
    float got[4];
    FakeQuantActivationsRef(tiny, 1, 4, fmt, got, nullptr);
    for (int i = 0; i < 4; ++i) CHECK(std::isfinite(got[i]), "denormal row: %g -> %g", tiny[i], got[i]);
    CHECK(got[2] == 0.0f && !std::signbit(got[2]) && got[3] == 0.0f && std::signbit(got[3]), "zeros stay +-0");
    CHECK(std::signbit(got[1]) && got[0] >= 0.0f, "signs kept");
    if (fmt == ActFormat::kInt8) CHECK(got[0] == 0.0f && got[1] == 0.0f, "int8: a denormal row rounds to zeros");
  }
}

static void TestLayerError() {
  const int64_t s = 70;
  const int32_t k = 40, n = 30;
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(s * k), w(k * n), wq(k * n);
  for (auto& v : x) v = d(rng);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = d(rng);
    wq[i] = w[i] + 0.1f * d(rng);
  }
  for (ActFormat act : {ActFormat::kNone, ActFormat::kInt8, ActFormat::kFp8E4M3}) {
    double got = -1;
    CHECK(LayerOutputError(x.data(), s, k, w.data(), wq.data(), n, act, &got, 2) == Status::kOk, "error call");
    std::vector<float> xq(s * k);
    FakeQuantActivationsRef(x.data(), s, k, act, xq.data(), nullptr);
    double num = 0, den = 0;
    for (int64_t r = 0; r < s; ++r)
      for (int32_t j = 0; j < n; ++j) {
        double y = 0, yq = 0;
        for (int32_t i = 0; i < k; ++i) {
          y += (double)x[r * k + i] * w[i * n + j];
          yq += (double)xq[r * k + i] * wq[i * n + j];
        }
        num += (y - yq) * (y - yq);
        den += y * y;
      }
    CHECK(std::fabs(got - num / den) < 1e-4 * (num / den), "layer error %g vs naive %g", got, num / den);
  }
  double zero = -1;
  LayerOutputError(x.data(), s, k, w.data(), w.data(), n, ActFormat::kNone, &zero, 1);
  CHECK(zero == 0, "identical weights give 0");
}

int main() {
  TestE4M3();
  TestFakeQuant();
  TestLayerError();
  return Finish();
}
