// SampleRow by its distribution: a sweep of evenly spaced coins must give each token a share equal
// to its float64 softmax probability (restricted to the top k / the nucleus, renormalized), tokens
// outside the top k or the nucleus never, temperature 0 the argmax, temperature T the same tokens as
// logits scaled by 1/T, fp16 rows their widened fp32 values; bad parameters and NaN rows refused.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "w4a8/eval_ops.h"
#include "w4a8/half.h"
#include "test_check.h"

using namespace w4a8;

namespace {

constexpr int kCoins = 100000;

float Coin(int j) { return ((float)j + 0.5f) / (float)kCoins; }

std::vector<double> SoftmaxF64(const std::vector<float>& row, double temperature) {
  double mx = -INFINITY;
  for (float x : row) mx = std::max(mx, (double)x / temperature);
  std::vector<double> p(row.size());
  double s = 0;
  for (size_t i = 0; i < row.size(); ++i) s += p[i] = std::exp((double)row[i] / temperature - mx);
  for (double& x : p) x /= s;
  return p;
}

// Indices by descending probability (ties by index).
std::vector<int> Ranked(const std::vector<double>& p) {
  std::vector<int> r(p.size());
  std::iota(r.begin(), r.end(), 0);
  std::stable_sort(r.begin(), r.end(), [&](int a, int b) { return p[a] > p[b]; });
  return r;
}

std::vector<int> CountSweep(const std::vector<float>& row, const SamplingParams& sp) {
  std::vector<int> counts(row.size(), 0);
  for (int j = 0; j < kCoins; ++j) {
    int64_t idx = -2;
    CHECK(SampleRow(row.data(), LogitsType::kFloat32, row.size(), sp, Coin(j), &idx) == Status::kOk, "status");
    CHECK(idx >= 0 && idx < (int64_t)row.size(), "index %lld out of range", (long long)idx);
    if (idx >= 0 && idx < (int64_t)row.size()) counts[(size_t)idx]++;
  }
  return counts;
}

// Each allowed token's share of the sweep equals its renormalized probability, within the float
// rounding of the cumulative sums (about vocab float epsilons) plus one coin at each end.
void CheckShares(const char* what, const std::vector<int>& counts, const std::vector<double>& p,
                 const std::vector<bool>& allowed) {
  double mass = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (allowed[i]) mass += p[i];
  const double tol = 2.0 + 4.0 * kCoins * (double)p.size() * 6e-8;
  for (size_t i = 0; i < p.size(); ++i) {
    const double expect = allowed[i] ? kCoins * p[i] / mass : 0.0;
    if (!allowed[i]) {
      CHECK(counts[i] == 0, "%s: token %zu outside the allowed set drawn %d times", what, i, counts[i]);
    } else {
      CHECK(std::fabs(counts[i] - expect) <= tol, "%s: token %zu drawn %d times, expected %.1f (tol %.1f)", what, i,
            counts[i], expect, tol);
    }
  }
}

}  // namespace

int main() {
  const unsigned seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  for (size_t vocab : {2u, 3u, 7u, 100u, 1000u}) {
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> row(vocab);
    for (float& x : row) x = dist(rng);

    // Plain sampling at two temperatures.
    for (float t : {1.0f, 0.7f}) {
      const std::vector<double> p = SoftmaxF64(row, t);
      SamplingParams sp;
      sp.temperature = t;
      CheckShares("plain", CountSweep(row, sp), p, std::vector<bool>(vocab, true));
    }

    const std::vector<double> p = SoftmaxF64(row, 1.0);
    const std::vector<int> ranked = Ranked(p);
    // top-k: only the k most likely, in their renormalized shares.
    for (int32_t k : {1, 2, (int32_t)vocab / 2 + 1}) {
      if ((size_t)k >= vocab) continue;
      std::vector<bool> allowed(vocab, false);
      for (int32_t i = 0; i < k; ++i) allowed[(size_t)ranked[(size_t)i]] = true;
      SamplingParams sp;
      sp.temperature = 1.0f;
      sp.top_k = k;
      CheckShares("top-k", CountSweep(row, sp), p, allowed);
    }
    // top-p halfway between two cumulative sums of the ranked probabilities, C[j-1] < p < C[j], so
    // that float and double agree on the nucleus: ranks 0..j (llama2.c's rule: the prefix whose mass
    // first exceeds p). Its pruning cutoff (1 - p) / (n - 1) never drops a nucleus member unless
    // n * p < 1, which is left to the tiny-vocabulary case below.
    double prev = 0;
    for (size_t j = 0; j + 1 < vocab && j < 6; ++j) {
      const double cj = prev + p[(size_t)ranked[j]];
      const double top_p = (prev + cj) / 2;
      prev = cj;
      if (top_p * (double)vocab < 1.0) continue;
      std::vector<bool> allowed(vocab, false);
      for (size_t i = 0; i <= j; ++i) allowed[(size_t)ranked[i]] = true;
      SamplingParams sp;
      sp.temperature = 1.0f;
      sp.top_p = (float)top_p;
      CheckShares("top-p", CountSweep(row, sp), p, allowed);
    }

    // Temperature 0 is the argmax; temperature 0.5 the same draws as the logits doubled (exact in float).
    std::vector<float> doubled(row);
    for (float& x : doubled) x *= 2.0f;
    int64_t argmax = -1, greedy = -1;
    SamplingParams zero;
    CHECK(RowArgmax(row.data(), LogitsType::kFloat32, vocab, &argmax) == Status::kOk, "argmax");
    CHECK(SampleRow(row.data(), LogitsType::kFloat32, vocab, zero, 0.3f, &greedy) == Status::kOk && greedy == argmax,
          "temperature 0 gave %lld, argmax %lld", (long long)greedy, (long long)argmax);
    std::vector<uint16_t> half(vocab);
    std::vector<float> widened(vocab);
    for (size_t i = 0; i < vocab; ++i) widened[i] = HalfToFloat(half[i] = FloatToHalf(row[i]));
    for (int j = 0; j < 2000; ++j) {
      const float coin = Coin(j * 50 + 7);
      SamplingParams half_t, one_t;
      half_t.temperature = 0.5f;
      half_t.top_p = one_t.top_p = 0.9f;
      one_t.temperature = 1.0f;
      int64_t a = -1, b = -1, h = -1, w = -1;
      SampleRow(row.data(), LogitsType::kFloat32, vocab, half_t, coin, &a);
      SampleRow(doubled.data(), LogitsType::kFloat32, vocab, one_t, coin, &b);
      CHECK(a == b, "vocab %zu coin %g: temperature 0.5 picked %lld, doubled logits %lld", vocab, coin, (long long)a,
            (long long)b);
      SampleRow(half.data(), LogitsType::kFloat16, vocab, one_t, coin, &h);
      SampleRow(widened.data(), LogitsType::kFloat32, vocab, one_t, coin, &w);
      CHECK(h == w, "vocab %zu coin %g: fp16 row picked %lld, its fp32 widening %lld", vocab, coin, (long long)h,
            (long long)w);
    }
  }

  // A tiny vocabulary whose nucleus is below llama2.c's cutoff still gives its most likely token.
  {
    const float row[2] = {0.0f, 0.01f};
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.top_p = 0.1f;
    int64_t idx = -1;
    CHECK(SampleRow(row, LogitsType::kFloat32, 2, sp, 0.99f, &idx) == Status::kOk && idx == 1, "tiny nucleus: %lld",
          (long long)idx);
  }
  // Refusals and rows with no distribution.
  {
    const float row[3] = {1.0f, 2.0f, 3.0f};
    const float nan_row[3] = {1.0f, NAN, 3.0f};
    const float inf_row[3] = {1.0f, INFINITY, 3.0f};
    const float neg_row[3] = {-INFINITY, -INFINITY, -INFINITY};
    SamplingParams ok;
    ok.temperature = 1.0f;
    int64_t idx = -2;
    CHECK(SampleRow(nan_row, LogitsType::kFloat32, 3, ok, 0.5f, &idx) == Status::kOk && idx == -1, "NaN row");
    CHECK(SampleRow(neg_row, LogitsType::kFloat32, 3, ok, 0.5f, &idx) == Status::kOk && idx == -1, "-inf row");
    CHECK(SampleRow(inf_row, LogitsType::kFloat32, 3, ok, 0.5f, &idx) == Status::kOk && idx == 1, "+inf row");
    SamplingParams bad = ok;
    bad.temperature = -1.0f;
    CHECK(SampleRow(row, LogitsType::kFloat32, 3, bad, 0.5f, &idx) == Status::kInvalidArgument, "negative temperature");
    bad = ok;
    bad.top_p = 1.5f;
    CHECK(SampleRow(row, LogitsType::kFloat32, 3, bad, 0.5f, &idx) == Status::kInvalidArgument, "top_p > 1");
    bad = ok;
    bad.top_k = -1;
    CHECK(SampleRow(row, LogitsType::kFloat32, 3, bad, 0.5f, &idx) == Status::kInvalidArgument, "negative top_k");
    CHECK(SampleRow(row, LogitsType::kFloat32, 3, ok, 1.0f, &idx) == Status::kInvalidArgument, "coin 1");
    CHECK(SampleRow(row, LogitsType::kFloat32, 0, ok, 0.5f, &idx) == Status::kInvalidArgument, "empty row");
    CHECK(SampleRow(nullptr, LogitsType::kFloat32, 3, ok, 0.5f, &idx) == Status::kInvalidArgument, "null row");
  }
  return Finish();
}
