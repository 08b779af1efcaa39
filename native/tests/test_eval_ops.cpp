// eval_ops against a float64 naive log-softmax on random logits (fp32 and fp16), plus argmax
// ties, NaN rows and rejected targets.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "w4a8/eval_ops.h"
#include "w4a8/half.h"
#include "test_check.h"

using namespace w4a8;


// Naive float64 reference: log(sum exp(x)) - x[t], without max subtraction (inputs are small enough).
static double NaiveNll(const std::vector<double>& row, int t) {
  double s = 0;
  for (double x : row) s += std::exp(x);
  return std::log(s) - row[t];
}

int main() {
  std::mt19937 rng(1234);
  const size_t shapes[][2] = {{1, 1}, {1, 2}, {3, 7}, {17, 512}, {5, 1000}, {2, 32000}};
  for (const auto& shape : shapes) {
    const size_t rows = shape[0], vocab = shape[1];
    std::normal_distribution<float> dist(0.5f, 4.0f);
    std::uniform_int_distribution<int> pick(0, (int)vocab - 1);
    std::vector<float> f32(rows * vocab);
    std::vector<uint16_t> f16(rows * vocab);
    for (size_t i = 0; i < f32.size(); ++i) {
      f32[i] = dist(rng);
      f16[i] = FloatToHalf(f32[i]);
    }
    std::vector<int32_t> targets(rows);
    for (auto& t : targets) t = pick(rng);
    std::vector<double> nll32(rows), nll16(rows);
    double total32 = 0, total16 = 0;
    CHECK(TokenNll(f32.data(), LogitsType::kFloat32, rows, vocab, targets.data(), nll32.data(), &total32) == Status::kOk, "fp32 status");
    CHECK(TokenNll(f16.data(), LogitsType::kFloat16, rows, vocab, targets.data(), nll16.data(), &total16) == Status::kOk, "fp16 status");
    double ref_total32 = 0;
    for (size_t r = 0; r < rows; ++r) {
      std::vector<double> row32(vocab), row16(vocab);
      for (size_t v = 0; v < vocab; ++v) {
        row32[v] = f32[r * vocab + v];
        row16[v] = HalfToFloat(f16[r * vocab + v]);
      }
      const double ref32 = NaiveNll(row32, targets[r]);
      const double ref16 = NaiveNll(row16, targets[r]);
      ref_total32 += ref32;
      CHECK(std::fabs(nll32[r] - ref32) <= 1e-9 * (1 + std::fabs(ref32)), "fp32 %zux%zu row %zu: %.12g vs %.12g", rows, vocab, r, nll32[r], ref32);
      CHECK(std::fabs(nll16[r] - ref16) <= 1e-9 * (1 + std::fabs(ref16)), "fp16 %zux%zu row %zu: %.12g vs %.12g", rows, vocab, r, nll16[r], ref16);
      if (vocab == 1) CHECK(nll32[r] == 0.0, "single-entry vocabulary must give zero NLL");

      // Argmax against a naive scan of the same row.
      int64_t idx32 = -2, idx16 = -2;
      CHECK(RowArgmax(&f32[r * vocab], LogitsType::kFloat32, vocab, &idx32) == Status::kOk, "argmax status");
      CHECK(RowArgmax(&f16[r * vocab], LogitsType::kFloat16, vocab, &idx16) == Status::kOk, "argmax16 status");
      size_t best32 = 0, best16 = 0;
      for (size_t v = 1; v < vocab; ++v) {
        if (row32[v] > row32[best32]) best32 = v;
        if (row16[v] > row16[best16]) best16 = v;
      }
      CHECK(idx32 == (int64_t)best32, "argmax fp32 %lld vs %zu", (long long)idx32, best32);
      CHECK(idx16 == (int64_t)best16, "argmax fp16 %lld vs %zu", (long long)idx16, best16);
    }
    CHECK(std::fabs(total32 - ref_total32) <= 1e-9 * (1 + std::fabs(ref_total32)), "total %.12g vs %.12g", total32, ref_total32);
  }

  // Large logits: the naive form overflows exp(), the max-subtracted one must not.
  {
    std::vector<float> row = {1000.0f, 999.0f, 998.0f};
    int32_t t = 1;
    double nll = 0, total = 0;
    CHECK(TokenNll(row.data(), LogitsType::kFloat32, 1, 3, &t, &nll, &total) == Status::kOk, "large status");
    const double expect = std::log(1 + std::exp(-1.0) + std::exp(-2.0)) + 1.0;
    CHECK(std::fabs(nll - expect) < 1e-12, "large logits: %.15g vs %.15g", nll, expect);
  }
  // Ties go to the lowest index; NaN never wins; an all-NaN row gives -1.
  {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> tie = {1.0f, 3.0f, 2.0f, 3.0f};
    std::vector<float> with_nan = {nan, -5.0f, nan, -4.0f};
    std::vector<float> all_nan = {nan, nan};
    int64_t idx = 0;
    RowArgmax(tie.data(), LogitsType::kFloat32, 4, &idx);
    CHECK(idx == 1, "tie: %lld", (long long)idx);
    RowArgmax(with_nan.data(), LogitsType::kFloat32, 4, &idx);
    CHECK(idx == 3, "nan skipped: %lld", (long long)idx);
    RowArgmax(all_nan.data(), LogitsType::kFloat32, 2, &idx);
    CHECK(idx == -1, "all nan: %lld", (long long)idx);
    double nll = 0, total = 0;
    int32_t t = 1;
    CHECK(TokenNll(with_nan.data(), LogitsType::kFloat32, 1, 4, &t, &nll, &total) == Status::kOk, "nan status");
    CHECK(std::isnan(nll) && std::isnan(total), "a NaN row must give NaN");
  }
  // Targets outside the vocabulary are refused, not read out of bounds.
  {
    std::vector<float> row = {0.0f, 1.0f};
    double nll = 0, total = 0;
    int32_t bad[] = {2, -1};
    CHECK(TokenNll(row.data(), LogitsType::kFloat32, 1, 2, &bad[0], &nll, &total) == Status::kInvalidArgument, "target = vocab");
    CHECK(TokenNll(row.data(), LogitsType::kFloat32, 1, 2, &bad[1], &nll, &total) == Status::kInvalidArgument, "target < 0");
    CHECK(TokenNll(row.data(), LogitsType::kFloat32, 1, 0, &bad[0], &nll, &total) == Status::kInvalidArgument, "vocab 0");
  }
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}
