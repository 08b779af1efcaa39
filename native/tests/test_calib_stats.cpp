// Calibration statistics: Hessian equals the naive X^T X (fp64 and fp32), mean/max |x| are exact,
// the reservoir stays bounded, is deterministic for a seed, independent of batching, holds real
// rows, and is roughly uniform; non-finite batches are refused without changing anything.
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "test_check.h"
#include "w4a8/calib_stats.h"
#include "w4a8/half.h"

using namespace w4a8;

int main() {
  const int32_t k = 300;
  const int64_t total = 1000;
  std::mt19937 rng(8);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(total * k);
  for (auto& v : x) v = d(rng);
  // Row r carries its index in column 0 so the sample can be traced.
  for (int64_t r = 0; r < total; ++r) x[r * k] = (float)r;

  for (HessianMode mode : {HessianMode::kFloat64, HessianMode::kFloat32}) {
    CalibStatsConfig cfg;
    cfg.k = k;
    cfg.sample_rows = 64;
    cfg.seed = 17;
    cfg.hessian = mode;
    std::unique_ptr<CalibStats> st;
    CHECK(CalibStats::Create(cfg, &st) == Status::kOk, "create");
    // Uneven batches.
    int64_t done = 0;
    for (int64_t b : {1, 7, 300, 2, 450, 240}) {
      CHECK(st->AddRows(x.data() + done * k, b, 2) == Status::kOk, "add");
      done += b;
    }
    CHECK(done == total && st->rows() == total, "row count");
    std::vector<double> h((size_t)k * k);
    CHECK(st->HessianF64(h.data()) == Status::kOk, "hessian");
    double worst = 0;
    for (int32_t i = 0; i < k; ++i)
      for (int32_t j = 0; j < k; ++j) {
        double ref = 0;
        for (int64_t r = 0; r < total; ++r) ref += (double)x[r * k + i] * x[r * k + j];
        worst = std::max(worst, std::fabs(h[(size_t)i * k + j] - ref) / (std::fabs(ref) + total));
      }
    CHECK(worst < 1e-5, "Hessian differs from naive X^T X (rel %g, mode %d)", worst, (int)mode);
    std::vector<float> mean(k), mx(k);
    st->MeanAbs(mean.data());
    st->MaxAbs(mx.data());
    for (int32_t i = 1; i < k; ++i) {
      double s = 0;
      float m = 0;
      for (int64_t r = 0; r < total; ++r) {
        s += std::fabs(x[r * k + i]);
        m = std::max(m, std::fabs(x[r * k + i]));
      }
      CHECK(std::fabs(mean[i] - s / total) < 1e-6 * (s / total), "mean |x|");
      CHECK(mx[i] == m, "max |x|");
    }
    CHECK(st->sample_count() == 64, "sample bounded");
  }

  // Reservoir: same seed and rows -> same sample regardless of batching; another seed differs.
  auto sample_of = [&](uint64_t seed, int64_t batch) {
    CalibStatsConfig cfg;
    cfg.k = k;
    cfg.sample_rows = 50;
    cfg.seed = seed;
    cfg.hessian = HessianMode::kNone;
    std::unique_ptr<CalibStats> st;
    CalibStats::Create(cfg, &st);
    for (int64_t r = 0; r < total; r += batch) st->AddRows(x.data() + r * k, std::min(batch, total - r));
    std::vector<float> s(st->sample_count() * k);
    st->Sample(s.data());
    return s;
  };
  const auto a = sample_of(5, 1), b = sample_of(5, 333), c = sample_of(6, 1);
  CHECK(a.size() == 50u * k, "capacity");
  CHECK(a == b, "sample depends on batching");
  CHECK(a != c, "seed has no effect");
  std::set<int> ids;
  for (int i = 0; i < 50; ++i) {
    const int id = (int)a[(size_t)i * k];
    ids.insert(id);
    CHECK(memcmp(&a[(size_t)i * k], &x[(size_t)id * k], k * 4) == 0, "sampled row %d is not a real row", id);
  }
  CHECK(ids.size() == 50, "sample rows are distinct");
  // Uniformity: over many seeds each half of the stream supplies about half of the sample.
  int late = 0, all = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const auto s = sample_of(seed, 100);
    for (int i = 0; i < 50; ++i) {
      late += s[(size_t)i * k] >= total / 2;
      ++all;
    }
  }
  CHECK(std::fabs((double)late / all - 0.5) < 0.05, "reservoir not uniform: %d of %d from the second half", late, all);

  // fp16 input equals fp32 input of the rounded values; NaN batches are refused.
  {
    CalibStatsConfig cfg;
    cfg.k = k;
    cfg.sample_rows = 8;
    std::unique_ptr<CalibStats> s16, s32;
    CalibStats::Create(cfg, &s16);
    CalibStats::Create(cfg, &s32);
    std::vector<uint16_t> half(20 * k);
    std::vector<float> rounded(20 * k);
    for (size_t i = 0; i < half.size(); ++i) {
      half[i] = FloatToHalf(x[i + k]);
      rounded[i] = HalfToFloat(half[i]);
    }
    CHECK(s16->AddRowsHalf(half.data(), 20) == Status::kOk, "fp16 add");
    s32->AddRows(rounded.data(), 20);
    std::vector<double> h16((size_t)k * k), h32((size_t)k * k);
    s16->HessianF64(h16.data());
    s32->HessianF64(h32.data());
    CHECK(h16 == h32, "fp16 path differs");
    std::vector<float> bad(k, 1.0f);
    bad[3] = NAN;
    CHECK(s32->AddRows(bad.data(), 1) == Status::kNumericalError, "NaN accepted");
    CHECK(s32->rows() == 20, "rejected batch counted");
    CalibStatsConfig none = cfg;
    none.hessian = HessianMode::kNone;
    std::unique_ptr<CalibStats> sn;
    CalibStats::Create(none, &sn);
    CHECK(sn->HessianF64(h16.data()) == Status::kUnsupported, "no Hessian");
    CalibStatsConfig badk = cfg;
    badk.k = 0;
    CHECK(CalibStats::Create(badk, &sn) == Status::kInvalidArgument, "k 0");
  }
  return Finish();
}
