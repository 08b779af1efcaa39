// Error compensation checked by its mathematical properties: the ALS normal equations against
// their reference twin; exact recovery of a planted Kronecker sum and of a planted low rank; the
// H-weighted objective never increasing across ALS sweeps; lorc-aware below lorc (and below any
// other rank-r fit, here an ALS fit of rank-1 Kronecker terms) in the H-norm; factor sizes and
// refusals of bad configurations and NaN.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "w4a8/compensate.h"
#include "w4a8/linalg.h"
#include "test_check.h"

using namespace w4a8;

static const uint64_t kSeed = 20261205;
static std::mt19937_64 rng(kSeed);

static std::vector<double> Randn(size_t n, double sd = 1.0) {
  std::normal_distribution<double> d(0, sd);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// An anisotropic SPD "X^T X" from rows whose channels have very different scales.
static std::vector<double> Hessian(int64_t k, int64_t rows = 0) {
  if (rows == 0) rows = 3 * k;
  auto x = Randn((size_t)rows * k);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c) x[r * k + c] *= 0.2 + 3.0 * ((c * 7) % 5);
  std::vector<double> h((size_t)k * k);
  GemmRefF64(true, false, k, k, rows, 1.0, x.data(), k, x.data(), k, 0.0, h.data(), k);
  return h;
}

static double HNorm(const std::vector<double>& h, const std::vector<double>& d, int64_t k, int64_t n) {
  std::vector<double> hd((size_t)k * n);
  GemmRefF64(false, false, k, n, k, 1.0, h.data(), k, d.data(), n, 0.0, hd.data(), n);
  double f = 0;
  for (size_t i = 0; i < d.size(); ++i) f += d[i] * hd[i];
  return f;
}

struct Pair {
  std::vector<float> w, wq;
};
static Pair FromError(const std::vector<double>& e, double base_sd = 1.0) {
  Pair p;
  auto base = Randn(e.size(), base_sd);
  p.wq.resize(e.size());
  p.w.resize(e.size());
  for (size_t i = 0; i < e.size(); ++i) {
    p.wq[i] = (float)base[i];
    p.w[i] = (float)(base[i] + e[i]);
  }
  return p;
}
static std::vector<double> ErrorOf(const Pair& p) {
  std::vector<double> e(p.w.size());
  for (size_t i = 0; i < e.size(); ++i) e[i] = (double)p.w[i] - (double)p.wq[i];
  return e;
}

static void TestNormalEquations() {
  const int32_t k1 = 3, k2 = 4, n1 = 5, n2 = 2, R = 2, K = k1 * k2, N = n1 * n2;
  auto h = Hessian(K);
  auto he = Randn((size_t)K * N);
  for (int for_a = 0; for_a < 2; ++for_a) {
    const int32_t m = for_a ? k1 : k2, c = for_a ? n1 : n2;
    auto f = for_a ? Randn((size_t)R * k2 * n2) : Randn((size_t)R * k1 * n1);
    const size_t dim = (size_t)R * m;
    std::vector<double> g(dim * dim), r(dim * c), gr(dim * dim), rr(dim * c);
    KronNormalEquations(h.data(), he.data(), k1, k2, n1, n2, R, f.data(), for_a, g.data(), r.data());
    KronNormalEquationsRef(h.data(), he.data(), k1, k2, n1, n2, R, f.data(), for_a, gr.data(), rr.data());
    double dg = 0, sg = 0, drh = 0, sr = 0;
    for (size_t i = 0; i < g.size(); ++i) dg = std::max(dg, std::fabs(g[i] - gr[i])), sg = std::max(sg, std::fabs(gr[i]));
    for (size_t i = 0; i < r.size(); ++i) drh = std::max(drh, std::fabs(r[i] - rr[i])), sr = std::max(sr, std::fabs(rr[i]));
    CHECK(dg <= 1e-12 * sg && drh <= 1e-12 * sr, "normal equations (for_a=%d) differ from the reference: G %g, rhs %g", for_a, dg / sg, drh / sr);
  }
}

static void TestPlantedKron() {
  const int32_t k1 = 4, k2 = 6, n1 = 3, n2 = 8, R = 2, K = k1 * k2, N = n1 * n2;
  auto a = Randn((size_t)R * k1 * n1), b = Randn((size_t)R * k2 * n2);
  std::vector<double> e((size_t)K * N, 0.0);
  for (int i = 0; i < R; ++i)
    for (int p = 0; p < k1; ++p)
      for (int q = 0; q < k2; ++q)
        for (int s = 0; s < n1; ++s)
          for (int t = 0; t < n2; ++t) e[(size_t)(p * k2 + q) * N + s * n2 + t] += 0.01 * a[(i * k1 + p) * n1 + s] * b[(i * k2 + q) * n2 + t];
  Pair pr = FromError(e);
  auto h = Hessian(K);
  CompensateConfig cfg;
  cfg.method = CompensateMethod::kKronAware;
  cfg.rank = R;
  cfg.k1 = k1;
  cfg.n1 = n1;
  std::vector<float> fa(CompensateFactorA(cfg, K, N)), fb(CompensateFactorB(cfg, K, N)), comp((size_t)K * N);
  CompensateResult res;
  Status st = CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), comp.data(), &res);
  CHECK(st == Status::kOk, "planted Kronecker: status %d", (int)st);
  // fp16 factors limit the recovery to about 1e-3 relative per element.
  CHECK(res.weighted_after < 1e-5, "planted Kronecker sum not recovered: relative H-norm left %g", res.weighted_after);
  double worst = 0;
  for (size_t i = 0; i < comp.size(); ++i) worst = std::max(worst, std::fabs((double)comp[i] - (double)pr.w[i]));
  CHECK(worst < 1e-4, "planted Kronecker: w_q + C differs from w by %g", worst);
}

static void TestPlantedLowRank() {
  const int32_t K = 40, N = 24, r = 3;
  auto u = Randn((size_t)K * r), v = Randn((size_t)r * N);
  std::vector<double> e((size_t)K * N);
  GemmRefF64(false, false, K, N, r, 0.01, u.data(), r, v.data(), N, 0.0, e.data(), N);
  Pair pr = FromError(e);
  auto h = Hessian(K);
  for (auto m : {CompensateMethod::kLorc, CompensateMethod::kLorcAware}) {
    CompensateConfig cfg;
    cfg.method = m;
    cfg.rank = r;
    std::vector<float> fa(K * r), fb(r * N);
    CompensateResult res;
    Status st = CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), nullptr, &res);
    CHECK(st == Status::kOk && res.weighted_after < 1e-5, "planted rank %d not recovered by method %d: %g", r, (int)m, res.weighted_after);
  }
}

static void TestAlsMonotoneAndAware() {
  const int32_t K = 48, N = 36;
  auto e = Randn((size_t)K * N, 0.02);
  Pair pr = FromError(e);
  e = ErrorOf(pr);
  auto h = Hessian(K);
  // Monotone ALS on a fit that cannot be exact.
  for (int32_t k1 : {4, 8, 12}) {
    for (int32_t R : {1, 3}) {
      CompensateConfig cfg;
      cfg.method = CompensateMethod::kKronAware;
      cfg.rank = R;
      cfg.k1 = k1;
      cfg.n1 = 6;
      cfg.max_iters = 25;
      cfg.tol = 0;
      std::vector<float> fa(CompensateFactorA(cfg, K, N)), fb(CompensateFactorB(cfg, K, N));
      std::vector<double> hist(cfg.max_iters + 1, -1);
      CompensateResult res;
      Status st = CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), nullptr, &res, hist.data());
      CHECK(st == Status::kOk, "ALS k1=%d R=%d: status %d", k1, R, (int)st);
      for (int i = 1; i <= res.iterations; ++i)
        CHECK(hist[i] <= hist[i - 1], "ALS k1=%d R=%d: objective rose at sweep %d: %.17g -> %.17g", k1, R, i, hist[i - 1], hist[i]);
      CHECK(hist[res.iterations] < hist[0], "ALS k1=%d R=%d: no gain over the Van Loan start (%g)", k1, R, hist[0]);
    }
  }
  // lorc-aware vs lorc vs a rank-r ALS fit (rank-1 Kronecker terms: A_i [K][1], B_i [1][N]), all in the H-norm, damp 0.
  const int32_t r = 4;
  std::vector<double> resid[3];
  for (int m = 0; m < 3; ++m) {
    CompensateConfig cfg;
    cfg.method = (CompensateMethod)m;
    cfg.rank = r;
    cfg.damp = 0;
    if (m == 2) cfg.k1 = K, cfg.n1 = 1, cfg.max_iters = 60;
    std::vector<float> fa(CompensateFactorA(cfg, K, N)), fb(CompensateFactorB(cfg, K, N)), comp((size_t)K * N);
    CompensateResult res;
    Status st = CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), comp.data(), &res);
    CHECK(st == Status::kOk, "rank comparison method %d: status %d", m, (int)st);
    resid[m].resize(comp.size());
    for (size_t i = 0; i < comp.size(); ++i) resid[m][i] = (double)pr.w[i] - (double)comp[i];
  }
  const double f0 = HNorm(h, e, K, N);
  const double fl = HNorm(h, resid[0], K, N) / f0, fa = HNorm(h, resid[1], K, N) / f0, fk = HNorm(h, resid[2], K, N) / f0;
  std::printf("rank %d relative H-norm: lorc %.6f, lorc-aware %.6f, ALS rank-1 terms %.6f\n", r, fl, fa, fk);
  CHECK(fa < fl, "lorc-aware (%g) not below lorc (%g) in the H-norm", fa, fl);
  CHECK(fa <= fk * (1 + 1e-3), "lorc-aware (%g) above another rank-%d fit (%g)", fa, r, fk);
}

static void TestRefusals() {
  const int32_t K = 16, N = 12;
  auto e = Randn((size_t)K * N, 0.1);
  Pair pr = FromError(e);
  auto h = Hessian(K);
  std::vector<float> fa(4096), fb(4096);
  CompensateConfig cfg;
  cfg.method = CompensateMethod::kLorc;
  cfg.rank = 13;  // > min(K, N)
  CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, nullptr, nullptr, cfg, fa.data(), fb.data(), nullptr, nullptr) == Status::kInvalidArgument, "rank above min(K, N) accepted");
  cfg.method = CompensateMethod::kLorcAware;
  cfg.rank = 2;
  CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, nullptr, nullptr, cfg, fa.data(), fb.data(), nullptr, nullptr) == Status::kInvalidArgument, "lorc-aware without a Hessian accepted");
  cfg.method = CompensateMethod::kKronAware;
  cfg.k1 = 3;  // does not divide 16
  cfg.n1 = 4;
  CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), nullptr, nullptr) == Status::kInvalidArgument, "k1 not dividing K accepted");
  cfg.k1 = 4;
  cfg.rank = 13;  // > min(k1 n1, k2 n2) = min(16, 12)
  CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), nullptr, nullptr) == Status::kInvalidArgument, "too many Kronecker terms accepted");
  cfg.rank = 2;
  CHECK(CompensateFactorA(cfg, K, N) == 2 * 4 * 4 && CompensateFactorB(cfg, K, N) == 2 * 4 * 3, "Kronecker factor sizes");
  pr.w[5] = NAN;
  CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), nullptr, cfg, fa.data(), fb.data(), nullptr, nullptr) == Status::kNumericalError, "NaN weight accepted");
}

// With an input scale s the fit runs on diag(s) W - w_q under diag(1/s) H diag(1/s): giving the
// already scaled W with no scale and the scaled H must produce the same factors.
static void TestInputScale() {
  const int32_t K = 24, N = 20;
  auto e = Randn((size_t)K * N, 0.05);
  Pair pr = FromError(e);
  auto h = Hessian(K);
  std::vector<float> s(K), ws(pr.w.size());
  std::vector<double> hs(h.size());
  for (int i = 0; i < K; ++i) s[i] = (float)(0.5 + 0.1 * i);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < N; ++j) ws[i * N + j] = (float)((double)s[i] * pr.w[i * N + j]);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j) hs[i * K + j] = h[i * K + j] / ((double)s[i] * s[j]);
  // Pre-scaling W in float rounds once more: compare the factors loosely.
  for (auto m : {CompensateMethod::kLorcAware, CompensateMethod::kKronAware}) {
    CompensateConfig cfg;
    cfg.method = m;
    cfg.rank = 2;
    cfg.k1 = 4;
    cfg.n1 = 5;
    std::vector<float> a1(CompensateFactorA(cfg, K, N)), b1(CompensateFactorB(cfg, K, N)), c1(K * N), a2(a1.size()), b2(b1.size()), c2(K * N);
    CompensateResult r1, r2;
    CHECK(CompensateError(pr.w.data(), pr.wq.data(), K, N, h.data(), s.data(), cfg, a1.data(), b1.data(), c1.data(), &r1) == Status::kOk, "scaled fit failed");
    CHECK(CompensateError(ws.data(), pr.wq.data(), K, N, hs.data(), nullptr, cfg, a2.data(), b2.data(), c2.data(), &r2) == Status::kOk, "pre-scaled fit failed");
    double worst = 0;
    for (int i = 0; i < K * N; ++i) worst = std::max(worst, std::fabs((double)c1[i] - c2[i]));
    CHECK(worst < 1e-4 && std::fabs(r1.weighted_after - r2.weighted_after) < 1e-4, "input scale (method %d): corrections differ by %g, objectives %g vs %g", (int)m, worst, r1.weighted_after, r2.weighted_after);
  }
}

int main() {
  std::printf("seed %llu\n", (unsigned long long)kSeed);
  TestNormalEquations();
  TestPlantedKron();
  TestPlantedLowRank();
  TestAlsMonotoneAndAware();
  TestRefusals();
  TestInputScale();
  return Finish();
}
