// Householder QR (thin), fp64. Used by the randomized SVD's range finder and for low-rank compensation.
#include <cmath>
#include <vector>

#include "w4a8/linalg.h"

namespace w4a8 {

static Status HouseholderQrUnguarded(const double* a, int64_t m, int64_t n, double* q, double* r) {
  if (m < n || n < 0 || (n > 0 && (!a || !q || !r))) return Status::kInvalidArgument;
  // Work column-major (columns contiguous) so reflections touch contiguous memory.
  std::vector<double> w((size_t)m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) w[(size_t)j * m + i] = a[i * n + j];
  std::vector<double> vs((size_t)m * n, 0.0);  // reflector j in vs[j*m + j .. m)
  std::vector<double> beta(n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double* col = w.data() + (size_t)j * m;
    double norm2 = 0;
    for (int64_t i = j; i < m; ++i) norm2 += col[i] * col[i];
    const double norm = std::sqrt(norm2);
    double* v = vs.data() + (size_t)j * m;
    if (norm == 0) { beta[j] = 0; continue; }
    // v = x + sign(x0) ||x|| e0 avoids cancellation; H = I - beta v v^T.
    const double alpha = col[j] >= 0 ? -norm : norm;
    for (int64_t i = j; i < m; ++i) v[i] = col[i];
    v[j] -= alpha;
    double vnorm2 = 0;
    for (int64_t i = j; i < m; ++i) vnorm2 += v[i] * v[i];
    beta[j] = vnorm2 > 0 ? 2.0 / vnorm2 : 0;
    for (int64_t c = j; c < n; ++c) {
      double* x = w.data() + (size_t)c * m;
      double d = 0;
      for (int64_t i = j; i < m; ++i) d += v[i] * x[i];
      d *= beta[j];
      for (int64_t i = j; i < m; ++i) x[i] -= d * v[i];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) r[i * n + j] = j >= i ? w[(size_t)j * m + i] : 0.0;
  // Q = H_0 H_1 ... H_{n-1} [I; 0], applied right to left, column-major again.
  std::vector<double> qc((size_t)m * n, 0.0);
  for (int64_t j = 0; j < n; ++j) qc[(size_t)j * m + j] = 1.0;
  for (int64_t j = n - 1; j >= 0; --j) {
    const double* v = vs.data() + (size_t)j * m;
    if (beta[j] == 0) continue;
    for (int64_t c = j; c < n; ++c) {
      double* x = qc.data() + (size_t)c * m;
      double d = 0;
      for (int64_t i = j; i < m; ++i) d += v[i] * x[i];
      d *= beta[j];
      for (int64_t i = j; i < m; ++i) x[i] -= d * v[i];
    }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) q[i * n + j] = qc[(size_t)j * m + i];
  return Status::kOk;
}

Status HouseholderQr(const double* a, int64_t m, int64_t n, double* q, double* r) {
  return StatusFromExceptions([&] { return HouseholderQrUnguarded(a, m, n, q, r); });
}

}  // namespace w4a8
