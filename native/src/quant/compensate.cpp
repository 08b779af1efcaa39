// Error compensation fits (compensate.h): low rank (data-free and H-weighted) and H-weighted
// Kronecker sums by alternating least squares, on the project's linalg (GEMM, Cholesky, SVD).
#include "w4a8/compensate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "w4a8/half.h"
#include "w4a8/linalg.h"

namespace w4a8 {
namespace {

bool IsKron(const CompensateConfig& c) { return c.method == CompensateMethod::kKronAware; }

float RoundHalf(double x) { return HalfToFloat(FloatToHalf((float)x)); }

// Top-r SVD: exact (the range finder spans everything) for the small side up to 512, else randomized.
Status TopSvd(const double* a, int64_t m, int64_t n, int64_t r, double* u, double* s, double* vt) {
  const int64_t small = std::min(m, n);
  if (small <= 512) return TruncatedSvd(a, m, n, r, u, s, vt, 1, small, 1);
  return TruncatedSvd(a, m, n, r, u, s, vt, 4, 16, 1);
}

// tr(D^T H D) for D [K][N]; H null = identity.
double Weighted(const double* h, const double* d, int64_t k, int64_t n, std::vector<double>& scratch, int threads) {
  double f = 0;
  if (!h) {
    for (int64_t i = 0; i < k * n; ++i) f += d[i] * d[i];
    return f;
  }
  scratch.resize((size_t)k * n);
  GemmF64(false, false, k, n, k, 1.0, h, k, d, n, 0.0, scratch.data(), n, threads);
  for (int64_t i = 0; i < k * n; ++i) f += d[i] * scratch[i];
  return f;
}

// C = sum_i A_i (x) B_i as [K][N] (A term-major [R][k1][n1], B [R][k2][n2]).
void KronDense(const double* a, const double* b, int32_t k1, int32_t k2, int32_t n1, int32_t n2, int32_t terms, double* c) {
  const int64_t n = (int64_t)n1 * n2;
  std::fill(c, c + (int64_t)k1 * k2 * n, 0.0);
  for (int32_t i = 0; i < terms; ++i) {
    const double* ai = a + (size_t)i * k1 * n1;
    const double* bi = b + (size_t)i * k2 * n2;
    for (int32_t p = 0; p < k1; ++p)
      for (int32_t q = 0; q < k2; ++q) {
        double* row = c + ((int64_t)p * k2 + q) * n;
        for (int32_t s = 0; s < n1; ++s) {
          const double aps = ai[p * n1 + s];
          const double* bq = bi + (size_t)q * n2;
          double* out = row + (int64_t)s * n2;
          for (int32_t t = 0; t < n2; ++t) out[t] += aps * bq[t];
        }
      }
  }
}

// Solves G X = R (G symmetric PSD [m][m], R [m][c]) with a ridge that grows until Cholesky succeeds.
Status SolveSpd(const std::vector<double>& g, int64_t m, const std::vector<double>& r, int64_t c, std::vector<double>& x,
                int threads) {
  double tr = 0;
  for (int64_t i = 0; i < m; ++i) tr += g[(size_t)i * m + i];
  double ridge = 1e-12 * (tr > 0 ? tr / m : 1.0) + 1e-300;
  std::vector<double> inv((size_t)m * m);
  for (int attempt = 0; attempt < 8; ++attempt, ridge *= 100) {
    std::vector<double> gd = g;
    for (int64_t i = 0; i < m; ++i) gd[(size_t)i * m + i] += ridge;
    if (CholeskyInverse(gd.data(), m, inv.data(), threads) != Status::kOk) continue;
    x.assign((size_t)m * c, 0.0);
    GemmF64(false, false, m, c, m, 1.0, inv.data(), m, r.data(), c, 0.0, x.data(), c, threads);
    return Status::kOk;
  }
  return Status::kNumericalError;
}

}  // namespace

int64_t CompensateFactorA(const CompensateConfig& c, int32_t k, int32_t) {
  return IsKron(c) ? (int64_t)c.rank * c.k1 * c.n1 : (int64_t)k * c.rank;
}
int64_t CompensateFactorB(const CompensateConfig& c, int32_t k, int32_t n) {
  if (!IsKron(c)) return (int64_t)c.rank * n;
  if (c.k1 <= 0 || c.n1 <= 0) return 0;
  return (int64_t)c.rank * (k / c.k1) * (n / c.n1);
}

Status CheckCompensateConfig(const CompensateConfig& c, int32_t k, int32_t n) {
  if (k <= 0 || n <= 0 || c.rank < 1) return Status::kInvalidArgument;
  if (!(c.damp >= 0) || c.max_iters < 0 || !(c.tol >= 0)) return Status::kInvalidArgument;
  switch (c.method) {
    case CompensateMethod::kLorc:
    case CompensateMethod::kLorcAware:
      return c.rank <= std::min(k, n) ? Status::kOk : Status::kInvalidArgument;
    case CompensateMethod::kKronAware: {
      if (c.k1 < 1 || c.n1 < 1 || k % c.k1 != 0 || n % c.n1 != 0) return Status::kInvalidArgument;
      const int64_t k2 = k / c.k1, n2 = n / c.n1;
      return c.rank <= std::min<int64_t>((int64_t)c.k1 * c.n1, k2 * n2) ? Status::kOk : Status::kInvalidArgument;
    }
  }
  return Status::kInvalidArgument;
}

void KronNormalEquationsRef(const double* h, const double* he, int32_t k1, int32_t k2, int32_t n1, int32_t n2,
                            int32_t terms, const double* f, bool for_a, double* g, double* rhs) {
  const int64_t K = (int64_t)k1 * k2, N = (int64_t)n1 * n2;
  // Unknown index u in [0, m) and the summed index v in [0, other): the row of H is u*k2+v (for A) or v*k2+u (for B).
  const int32_t m = for_a ? k1 : k2, other = for_a ? k2 : k1;
  const int32_t c = for_a ? n1 : n2, oc = for_a ? n2 : n1;  // columns of the unknown / of F
  auto row = [&](int32_t u, int32_t v) { return for_a ? (int64_t)u * k2 + v : (int64_t)v * k2 + u; };
  auto col = [&](int32_t s, int32_t t) { return for_a ? (int64_t)s * n2 + t : (int64_t)t * n2 + s; };
  const int64_t dim = (int64_t)terms * m;
  for (int32_t i = 0; i < terms; ++i)
    for (int32_t j = 0; j < terms; ++j)
      for (int32_t p = 0; p < m; ++p)
        for (int32_t pp = 0; pp < m; ++pp) {
          double sum = 0;
          for (int32_t q = 0; q < other; ++q)
            for (int32_t qq = 0; qq < other; ++qq) {
              double ff = 0;
              for (int32_t t = 0; t < oc; ++t) ff += f[((size_t)i * other + q) * oc + t] * f[((size_t)j * other + qq) * oc + t];
              sum += h[row(p, q) * K + row(pp, qq)] * ff;
            }
          g[((int64_t)i * m + p) * dim + (int64_t)j * m + pp] = sum;
        }
  for (int32_t i = 0; i < terms; ++i)
    for (int32_t p = 0; p < m; ++p)
      for (int32_t s = 0; s < c; ++s) {
        double sum = 0;
        for (int32_t q = 0; q < other; ++q)
          for (int32_t t = 0; t < oc; ++t) sum += f[((size_t)i * other + q) * oc + t] * he[row(p, q) * N + col(s, t)];
        rhs[((int64_t)i * m + p) * c + s] = sum;
      }
}

void KronNormalEquations(const double* h, const double* he, int32_t k1, int32_t k2, int32_t n1, int32_t n2,
                         int32_t terms, const double* f, bool for_a, double* g, double* rhs) {
  const int64_t K = (int64_t)k1 * k2, N = (int64_t)n1 * n2;
  const int32_t m = for_a ? k1 : k2, other = for_a ? k2 : k1;
  const int32_t c = for_a ? n1 : n2, oc = for_a ? n2 : n1;
  const int64_t dim = (int64_t)terms * m;
  // FF[(i,q)][(j,q')] = (F_i F_j^T)[q][q']: one GEMM over the stacked factors [R*other][oc].
  const int64_t fr = (int64_t)terms * other;
  std::vector<double> ff((size_t)fr * fr);
  GemmF64(false, true, fr, fr, oc, 1.0, f, oc, f, oc, 0.0, ff.data(), fr);
  // H viewed as blocks: for A, H[(p,q)][(p',q')] = h[(p*k2+q)*K + p'*k2+q'] (block (p,p') is a
  // contiguous k2 x k2 tile); for B the roles swap (stride k2 inside a block).
  const int64_t su = for_a ? k2 : 1, sv = for_a ? 1 : k2;  // row = u*su + v*sv
  for (int32_t p = 0; p < m; ++p)
    for (int32_t pp = 0; pp < m; ++pp)
      for (int32_t i = 0; i < terms; ++i)
        for (int32_t j = 0; j < terms; ++j) {
          double sum = 0;
          for (int32_t q = 0; q < other; ++q) {
            const double* hr = h + (p * su + q * sv) * K + pp * su;
            const double* fq = ff.data() + ((size_t)i * other + q) * fr + (size_t)j * other;
            for (int32_t qq = 0; qq < other; ++qq) sum += hr[qq * sv] * fq[qq];
          }
          g[((int64_t)i * m + p) * dim + (int64_t)j * m + pp] = sum;
        }
  const int64_t cs = for_a ? n2 : 1, ct = for_a ? 1 : n2;  // col = s*cs + t*ct
  for (int32_t i = 0; i < terms; ++i)
    for (int32_t p = 0; p < m; ++p)
      for (int32_t s = 0; s < c; ++s) {
        double sum = 0;
        for (int32_t q = 0; q < other; ++q) {
          const double* her = he + (p * su + q * sv) * N + s * cs;
          const double* fq = f + ((size_t)i * other + q) * oc;
          for (int32_t t = 0; t < oc; ++t) sum += fq[t] * her[t * ct];
        }
        rhs[((int64_t)i * m + p) * c + s] = sum;
      }
}

static Status CompensateUnguarded(const float* w, const float* wq, int32_t k, int32_t n, const double* hessian,
                                  const float* input_scale, const CompensateConfig& cfg, float* a_out, float* b_out, float* compensated,
                                  CompensateResult* result, double* history, int threads) {
  if (!w || !wq || !a_out || !b_out) return Status::kInvalidArgument;
  Status st = CheckCompensateConfig(cfg, k, n);
  if (st != Status::kOk) return st;
  const bool aware = cfg.method != CompensateMethod::kLorc;
  if (aware && !hessian) return Status::kInvalidArgument;
  const int64_t K = k, N = n, r = cfg.rank;
  std::vector<double> e((size_t)K * N);
  for (int64_t i = 0; i < K * N; ++i) {
    const double s = input_scale ? (double)input_scale[i / N] : 1.0;
    e[i] = s * (double)w[i] - (double)wq[i];
    if (!std::isfinite(e[i])) return Status::kNumericalError;
  }
  if (input_scale)
    for (int64_t i = 0; i < K; ++i)
      if (!(input_scale[i] > 0) || !std::isfinite(input_scale[i])) return Status::kInvalidArgument;
  std::vector<double> h;
  if (aware) {
    h.assign(hessian, hessian + K * K);
    double mean = 0;
    for (int64_t i = 0; i < K * K; ++i)
      if (!std::isfinite(h[i])) return Status::kNumericalError;
    if (input_scale)
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = 0; j < K; ++j) h[i * K + j] /= (double)input_scale[i] * (double)input_scale[j];
    for (int64_t i = 0; i < K; ++i) {
      if (h[i * K + i] <= 0) {
        for (int64_t j = 0; j < K; ++j) h[i * K + j] = h[j * K + i] = 0;
        h[i * K + i] = 1;
      }
      mean += h[i * K + i];
    }
    mean /= (double)K;
    for (int64_t i = 0; i < K; ++i) h[i * K + i] += cfg.damp * mean;
  }
  const double* hp = aware ? h.data() : nullptr;
  std::vector<double> scratch;
  const double f0 = Weighted(hp, e.data(), K, N, scratch, threads);

  std::vector<double> a, b;  // double factors before fp16 rounding
  int32_t iters = 0;
  if (!IsKron(cfg)) {
    std::vector<double> target = e, l;
    if (aware) {
      l = h;
      if ((st = CholeskyLower(l.data(), K, threads)) != Status::kOk) return st;
      GemmF64(true, false, K, N, K, 1.0, l.data(), K, e.data(), N, 0.0, target.data(), N, threads);  // L^T E
    }
    std::vector<double> u((size_t)K * r), s(r), vt((size_t)r * N);
    if ((st = TopSvd(target.data(), K, N, r, u.data(), s.data(), vt.data())) != Status::kOk) return st;
    for (int64_t j = 0; j < r; ++j) {
      const double sq = std::sqrt(std::max(s[j], 0.0));
      for (int64_t i = 0; i < K; ++i) u[i * r + j] *= sq;
      for (int64_t i = 0; i < N; ++i) vt[j * N + i] *= sq;
    }
    b = vt;
    if (aware) {  // A = L^-T (U sqrt S)
      if ((st = InvertLowerTriangular(l.data(), K, threads)) != Status::kOk) return st;
      a.assign((size_t)K * r, 0.0);
      GemmF64(true, false, K, r, K, 1.0, l.data(), K, u.data(), r, 0.0, a.data(), r, threads);
    } else {
      a = u;
    }
  } else {
    const int32_t k1 = cfg.k1, n1 = cfg.n1, k2 = k / k1, n2 = n / n1, R = cfg.rank;
    // Van Loan-Pitsianis: the rearranged E [(p,s)][(q,t)] has rank 1 per Kronecker term.
    std::vector<double> re((size_t)K * N);
    for (int32_t p = 0; p < k1; ++p)
      for (int32_t q = 0; q < k2; ++q)
        for (int32_t s = 0; s < n1; ++s)
          for (int32_t t = 0; t < n2; ++t)
            re[((size_t)p * n1 + s) * ((size_t)k2 * n2) + (size_t)q * n2 + t] = e[((size_t)p * k2 + q) * N + (size_t)s * n2 + t];
    const int64_t rm = (int64_t)k1 * n1, rn = (int64_t)k2 * n2;
    std::vector<double> u((size_t)rm * R), s(R), vt((size_t)R * rn);
    if ((st = TopSvd(re.data(), rm, rn, R, u.data(), s.data(), vt.data())) != Status::kOk) return st;
    a.assign((size_t)R * rm, 0.0);
    b.assign((size_t)R * rn, 0.0);
    for (int32_t i = 0; i < R; ++i) {
      const double sq = std::sqrt(std::max(s[i], 0.0));
      for (int64_t x = 0; x < rm; ++x) a[(size_t)i * rm + x] = sq * u[(size_t)x * R + i];
      for (int64_t x = 0; x < rn; ++x) b[(size_t)i * rn + x] = sq * vt[(size_t)i * rn + x];
    }
    std::vector<double> c((size_t)K * N), d((size_t)K * N), he((size_t)K * N);
    auto objective = [&](const std::vector<double>& fa, const std::vector<double>& fb) {
      KronDense(fa.data(), fb.data(), k1, k2, n1, n2, R, c.data());
      for (int64_t x = 0; x < K * N; ++x) d[x] = e[x] - c[x];
      return Weighted(hp, d.data(), K, N, scratch, threads);
    };
    std::vector<double> ident;
    const double* hk = hp;
    if (!hk) {  // data-free Kronecker fit (tests): H = I
      ident.assign((size_t)K * K, 0.0);
      for (int64_t x = 0; x < K; ++x) ident[x * K + x] = 1;
      hk = ident.data();
    }
    GemmF64(false, false, K, N, K, 1.0, hk, K, e.data(), N, 0.0, he.data(), N, threads);
    double f = objective(a, b);
    if (history) history[0] = f;
    std::vector<double> g, rhs, x;
    for (iters = 0; iters < cfg.max_iters;) {
      const double before = f;
      for (int half = 0; half < 2; ++half) {
        const bool for_a = half == 0;
        const int32_t m = for_a ? k1 : k2, cols = for_a ? n1 : n2;
        const int64_t dim = (int64_t)R * m;
        g.assign((size_t)dim * dim, 0.0);
        rhs.assign((size_t)dim * cols, 0.0);
        KronNormalEquations(hk, he.data(), k1, k2, n1, n2, R, for_a ? b.data() : a.data(), for_a, g.data(), rhs.data());
        if (SolveSpd(g, dim, rhs, cols, x, threads) != Status::kOk) continue;
        // x [(i,u)][col] is exactly the term-major factor layout [R][m][cols].
        std::vector<double> na = for_a ? x : a, nb = for_a ? b : x;
        const double nf = objective(na, nb);
        if (nf <= f) {
          a.swap(na);
          b.swap(nb);
          f = nf;
        }
      }
      ++iters;
      if (history) history[iters] = f;
      if (before - f <= cfg.tol * before) break;
    }
  }

  // Store in fp16 and measure what the stored factors give.
  const int64_t na = CompensateFactorA(cfg, k, n), nb = CompensateFactorB(cfg, k, n);
  std::vector<double> ar(na), br(nb);
  for (int64_t i = 0; i < na; ++i) {
    a_out[i] = RoundHalf(a[i]);
    if (!std::isfinite(a_out[i])) return Status::kNumericalError;
    ar[i] = a_out[i];
  }
  for (int64_t i = 0; i < nb; ++i) {
    b_out[i] = RoundHalf(b[i]);
    if (!std::isfinite(b_out[i])) return Status::kNumericalError;
    br[i] = b_out[i];
  }
  std::vector<double> c((size_t)K * N);
  if (IsKron(cfg)) KronDense(ar.data(), br.data(), cfg.k1, k / cfg.k1, cfg.n1, n / cfg.n1, cfg.rank, c.data());
  else GemmF64(false, false, K, N, r, 1.0, ar.data(), r, br.data(), N, 0.0, c.data(), N, threads);
  std::vector<double> d((size_t)K * N);
  for (int64_t i = 0; i < K * N; ++i) d[i] = e[i] - c[i];
  const double f1 = Weighted(hp, d.data(), K, N, scratch, threads);
  if (compensated)
    for (int64_t i = 0; i < K * N; ++i) compensated[i] = (float)((double)wq[i] + c[i]);
  if (result) {
    result->weighted_before = f0 > 0 ? 1.0 : 0.0;
    result->weighted_after = f0 > 0 ? f1 / f0 : 0.0;
    result->iterations = iters;
  }
  return Status::kOk;
}

Status CompensateError(const float* w, const float* w_q, int32_t k, int32_t n, const double* hessian,
                       const float* input_scale, const CompensateConfig& cfg, float* a, float* b, float* compensated,
                       CompensateResult* result, double* history, int threads) {
  return StatusFromExceptions([&] {
    return CompensateUnguarded(w, w_q, k, n, hessian, input_scale, cfg, a, b, compensated, result, history, threads);
  });
}

}  // namespace w4a8
