// SVD: exact one-sided Jacobi for small/thin matrices, and a randomized truncated SVD
// (range finder + power iterations, Halko et al. 2011) that reduces a big matrix to a Jacobi problem.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "w4a8/linalg.h"

namespace w4a8 {
namespace {

// splitmix64 -> two uniforms -> one standard normal (Box-Muller): deterministic test matrices.
struct Rng {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return ((Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double Normal() {
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace

static Status JacobiSvdUnguarded(const double* a, int64_t m, int64_t n, double* u, double* s, double* vt) {
  if (m < n || n < 0 || (n > 0 && (!a || !u || !s || !vt))) return Status::kInvalidArgument;
  // Columns of A (and V) stored as contiguous rows: ut[j][i] = A[i][j].
  std::vector<double> ut((size_t)n * m), v((size_t)n * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) ut[(size_t)j * m + i] = a[i * n + j];
  for (int64_t j = 0; j < n; ++j) v[(size_t)j * n + j] = 1.0;
  const double eps = 1e-15;
  for (int sweep = 0; sweep < 60; ++sweep) {
    bool rotated = false;
    for (int64_t p = 0; p < n - 1; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        double* up = ut.data() + (size_t)p * m;
        double* uq = ut.data() + (size_t)q * m;
        double alpha = 0, beta = 0, gamma = 0;
        for (int64_t i = 0; i < m; ++i) {
          alpha += up[i] * up[i];
          beta += uq[i] * uq[i];
          gamma += up[i] * uq[i];
        }
        if (std::fabs(gamma) <= eps * std::sqrt(alpha * beta) || gamma == 0) continue;
        rotated = true;
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
        const double c = 1 / std::sqrt(1 + t * t), sn = c * t;
        for (int64_t i = 0; i < m; ++i) {
          const double x = up[i], y = uq[i];
          up[i] = c * x - sn * y;
          uq[i] = sn * x + c * y;
        }
        double* vp = v.data() + (size_t)p * n;
        double* vq = v.data() + (size_t)q * n;
        for (int64_t i = 0; i < n; ++i) {
          const double x = vp[i], y = vq[i];
          vp[i] = c * x - sn * y;
          vq[i] = sn * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  std::vector<double> norms(n);
  for (int64_t j = 0; j < n; ++j) {
    double s2 = 0;
    for (int64_t i = 0; i < m; ++i) s2 += ut[(size_t)j * m + i] * ut[(size_t)j * m + i];
    norms[j] = std::sqrt(s2);
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return norms[x] > norms[y]; });
  for (int64_t jj = 0; jj < n; ++jj) {
    const int64_t j = order[jj];
    s[jj] = norms[j];
    // A zero singular value leaves a zero column in U (the factorisation still holds).
    const double inv = norms[j] > 0 ? 1.0 / norms[j] : 0.0;
    for (int64_t i = 0; i < m; ++i) u[i * n + jj] = ut[(size_t)j * m + i] * inv;
    for (int64_t i = 0; i < n; ++i) vt[jj * n + i] = v[(size_t)j * n + i];
  }
  return Status::kOk;
}

Status JacobiSvd(const double* a, int64_t m, int64_t n, double* u, double* s, double* vt) {
  return StatusFromExceptions([&] { return JacobiSvdUnguarded(a, m, n, u, s, vt); });
}

static Status TruncatedSvdUnguarded(const double* a, int64_t m, int64_t n, int64_t rank, double* u, double* s, double* vt,
                                    int power_iters, int64_t oversample, uint64_t seed) {
  if (m <= 0 || n <= 0 || rank <= 0 || rank > std::min(m, n) || !a || !u || !s || !vt || oversample < 0)
    return Status::kInvalidArgument;
  const int64_t l = std::min(rank + oversample, std::min(m, n));
  Rng rng{seed};
  std::vector<double> omega((size_t)n * l);
  for (auto& x : omega) x = rng.Normal();
  std::vector<double> y((size_t)m * l), qy((size_t)m * l), z((size_t)n * l), qz((size_t)n * l), r((size_t)l * l);
  GemmF64(false, false, m, l, n, 1.0, a, n, omega.data(), l, 0.0, y.data(), l);
  Status st = HouseholderQr(y.data(), m, l, qy.data(), r.data());
  if (st != Status::kOk) return st;
  for (int it = 0; it < power_iters; ++it) {
    GemmF64(true, false, n, l, m, 1.0, a, n, qy.data(), l, 0.0, z.data(), l);  // Z = A^T Q
    if ((st = HouseholderQr(z.data(), n, l, qz.data(), r.data())) != Status::kOk) return st;
    GemmF64(false, false, m, l, n, 1.0, a, n, qz.data(), l, 0.0, y.data(), l);  // Y = A Qz
    if ((st = HouseholderQr(y.data(), m, l, qy.data(), r.data())) != Status::kOk) return st;
  }
  // B^T = A^T Q  [n, l];  B^T = U' S V'^T  =>  A ~ Q B = (Q V') S U'^T
  GemmF64(true, false, n, l, m, 1.0, a, n, qy.data(), l, 0.0, z.data(), l);
  std::vector<double> ub((size_t)n * l), sb(l), vbt((size_t)l * l);
  if ((st = JacobiSvd(z.data(), n, l, ub.data(), sb.data(), vbt.data())) != Status::kOk) return st;
  // U = Q V' where V' = vbt^T; keep the first `rank` columns.
  std::vector<double> ufull((size_t)m * l);
  GemmF64(false, true, m, l, l, 1.0, qy.data(), l, vbt.data(), l, 0.0, ufull.data(), l);
  for (int64_t i = 0; i < m; ++i) memcpy(u + i * rank, ufull.data() + (size_t)i * l, sizeof(double) * rank);
  for (int64_t j = 0; j < rank; ++j) s[j] = sb[j];
  for (int64_t j = 0; j < rank; ++j)
    for (int64_t i = 0; i < n; ++i) vt[j * n + i] = ub[(size_t)i * l + j];
  return Status::kOk;
}

Status TruncatedSvd(const double* a, int64_t m, int64_t n, int64_t rank, double* u, double* s, double* vt,
                    int power_iters, int64_t oversample, uint64_t seed) {
  return StatusFromExceptions([&] { return TruncatedSvdUnguarded(a, m, n, rank, u, s, vt, power_iters, oversample, seed); });
}

}  // namespace w4a8
