// Blocked right-looking Cholesky, triangular inverse and solves, in fp64 and (for GPTQ's largest
// Hessians, as the reference implementation factors them) fp32. GPTQ runs these on K x K Hessians
// up to 11008 x 11008, so the O(n^3) parts go through GemmF64 / GemmF32; the small unblocked
// diagonal-block steps accumulate in fp64 either way.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "linalg/parallel.h"
#include "w4a8/linalg.h"

namespace w4a8 {
namespace {

constexpr int64_t kBlock = 128;

int Threads(int threads) { return ChunkCount(threads); }

void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
          int64_t ldb, double beta, double* c, int64_t ldc, int t) {
  GemmF64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, t);
}
void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, double beta, float* c, int64_t ldc, int t) {
  GemmF32(ta, tb, m, n, k, (float)alpha, a, lda, b, ldb, (float)beta, c, ldc, t);
}

// Unblocked Cholesky of the nb x nb diagonal block at a (leading dimension lda).
template <typename T>
bool CholeskyUnblocked(T* a, int64_t lda, int64_t nb) {
  for (int64_t j = 0; j < nb; ++j) {
    double d = a[j * lda + j];
    for (int64_t p = 0; p < j; ++p) d -= (double)a[j * lda + p] * a[j * lda + p];
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double ljj = std::sqrt(d);
    a[j * lda + j] = (T)ljj;
    for (int64_t i = j + 1; i < nb; ++i) {
      double s = a[i * lda + j];
      for (int64_t p = 0; p < j; ++p) s -= (double)a[i * lda + p] * a[j * lda + p];
      a[i * lda + j] = (T)(s / ljj);
    }
  }
  return true;
}

// Rows of b (each of length nb, leading dimension ldb) become b L^-T for the nb x nb lower L.
void SolveRowsLowerT(const double* l, int64_t ldl, int64_t nb, double* b, int64_t ldb, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    double* x = b + r * ldb;
    for (int64_t j = 0; j < nb; ++j) {
      double s = x[j];
      const double* lj = l + j * ldl;
      for (int64_t p = 0; p < j; ++p) s -= x[p] * lj[p];
      x[j] = s / lj[j];
    }
  }
}

// In-place inverse of a small lower-triangular block.
template <typename T>
void InvertLowerUnblocked(T* l, int64_t ldl, int64_t nb) {
  for (int64_t j = 0; j < nb; ++j) l[j * ldl + j] = (T)(1.0 / l[j * ldl + j]);
  // Column j of the inverse, top down: X[i][j] = -X[i][i] * sum_{p=j}^{i-1} L[i][p] X[p][j]. Columns
  // right of j still hold L, rows above i in column j already hold X.
  for (int64_t j = 0; j < nb; ++j) {
    for (int64_t i = j + 1; i < nb; ++i) {
      double s = (double)l[i * ldl + j] * l[j * ldl + j];
      for (int64_t p = j + 1; p < i; ++p) s += (double)l[i * ldl + p] * l[p * ldl + j];
      l[i * ldl + j] = (T)(-(double)l[i * ldl + i] * s);
    }
  }
}

}  // namespace

template <typename T>
static Status CholeskyLowerUnguarded(T* a, int64_t n, int threads) {
  if (n < 0 || (n > 0 && !a)) return Status::kInvalidArgument;
  const int t = Threads(threads);
  std::vector<T> linv, panel;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t nb = std::min(kBlock, n - j0);
    const int64_t j1 = j0 + nb;
    if (!CholeskyUnblocked(a + j0 * n + j0, n, nb)) return Status::kNumericalError;
    const int64_t rest = n - j1;
    if (rest == 0) break;
    // Panel: A21 <- A21 L11^-T, as a GEMM with the explicit inverse of the small diagonal block
    // (a row-by-row substitution is a scalar dependency chain, ~10x slower at K = 11008).
    linv.assign((size_t)nb * nb, T(0));
    for (int64_t i = 0; i < nb; ++i)
      for (int64_t j = 0; j <= i; ++j) linv[(size_t)i * nb + j] = a[(j0 + i) * n + j0 + j];
    InvertLowerUnblocked(linv.data(), nb, nb);
    panel.resize((size_t)rest * nb);
    for (int64_t r = 0; r < rest; ++r)
      std::copy(a + (j1 + r) * n + j0, a + (j1 + r) * n + j1, panel.data() + (size_t)r * nb);
    Gemm(false, true, rest, nb, nb, 1.0, panel.data(), nb, linv.data(), nb, 0.0, a + j1 * n + j0, n, t);
    // Trailing update of the lower triangle only, one row block at a time: A22 -= A21 A21^T.
    for (int64_t i0 = j1; i0 < n; i0 += 256) {
      const int64_t mb = std::min<int64_t>(256, n - i0);
      const int64_t cols = i0 + mb - j1;
      Gemm(false, true, mb, cols, nb, -1.0, a + i0 * n + j0, n, a + j1 * n + j0, n, 1.0, a + i0 * n + j1, n, t);
    }
  }
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, T(0));
  return Status::kOk;
}

Status CholeskyLower(double* a, int64_t n, int threads) {
  return StatusFromExceptions([&] { return CholeskyLowerUnguarded(a, n, threads); });
}

Status CholeskyLower(float* a, int64_t n, int threads) {
  return StatusFromExceptions([&] { return CholeskyLowerUnguarded(a, n, threads); });
}

template <typename T>
static Status InvertLowerTriangularUnguarded(T* l, int64_t n, int threads) {
  if (n < 0 || (n > 0 && !l)) return Status::kInvalidArgument;
  for (int64_t i = 0; i < n; ++i) {
    if (!(l[i * n + i] != 0) || !std::isfinite(l[i * n + i])) return Status::kNumericalError;
    std::fill(l + i * n + i + 1, l + (i + 1) * n, T(0));
  }
  const int t = Threads(threads);
  // Backward over diagonal blocks: with X22 = inv(L22) already in place,
  // X21 = -X22 L21 X11, then X11 = inv(L11).
  std::vector<T> tmp;
  const int64_t last = ((n - 1) / kBlock) * kBlock;
  for (int64_t j0 = last; j0 >= 0; j0 -= kBlock) {
    const int64_t nb = std::min(kBlock, n - j0);
    const int64_t j1 = j0 + nb;
    const int64_t rest = n - j1;
    InvertLowerUnblocked(l + j0 * n + j0, n, nb);
    if (rest > 0) {
      tmp.assign((size_t)rest * nb, T(0));
      // tmp = X22 L21. X22 is lower triangular, so row block [r0, r1) of it only needs columns < r1:
      // half the flops of a plain GEMM.
      for (int64_t r0 = 0; r0 < rest; r0 += 256) {
        const int64_t r1 = std::min<int64_t>(rest, r0 + 256);
        Gemm(false, false, r1 - r0, nb, r1, 1.0, l + (j1 + r0) * n + j1, n, l + j1 * n + j0, n, 0.0,
                tmp.data() + r0 * nb, nb, t);
      }
      // L21 <- -tmp X11
      Gemm(false, false, rest, nb, nb, -1.0, tmp.data(), nb, l + j0 * n + j0, n, 0.0, l + j1 * n + j0, n, t);
    }
  }
  return Status::kOk;
}

Status InvertLowerTriangular(double* l, int64_t n, int threads) {
  return StatusFromExceptions([&] { return InvertLowerTriangularUnguarded(l, n, threads); });
}

Status InvertLowerTriangular(float* l, int64_t n, int threads) {
  return StatusFromExceptions([&] { return InvertLowerTriangularUnguarded(l, n, threads); });
}

void SolveLowerLeft(const double* l, int64_t n, double* b, int64_t nrhs) {
  for (int64_t i = 0; i < n; ++i) {
    double* xi = b + i * nrhs;
    for (int64_t p = 0; p < i; ++p) {
      const double lip = l[i * n + p];
      if (lip == 0) continue;
      const double* xp = b + p * nrhs;
      for (int64_t c = 0; c < nrhs; ++c) xi[c] -= lip * xp[c];
    }
    const double inv = 1.0 / l[i * n + i];
    for (int64_t c = 0; c < nrhs; ++c) xi[c] *= inv;
  }
}

void SolveLowerTransposedRight(const double* l, int64_t n, double* b, int64_t nrhs) {
  SolveRowsLowerT(l, n, n, b, n, nrhs);
}

static Status CholeskyInverseUnguarded(const double* a, int64_t n, double* out, int threads) {
  std::vector<double> lmat(a, a + n * n);
  Status s = CholeskyLower(lmat.data(), n, threads);
  if (s != Status::kOk) return s;
  s = InvertLowerTriangular(lmat.data(), n, threads);
  if (s != Status::kOk) return s;
  // A^-1 = L^-T L^-1
  GemmF64(true, false, n, n, n, 1.0, lmat.data(), n, lmat.data(), n, 0.0, out, n, Threads(threads));
  return Status::kOk;
}

Status CholeskyInverse(const double* a, int64_t n, double* out, int threads) {
  return StatusFromExceptions([&] { return CholeskyInverseUnguarded(a, n, out, threads); });
}

template <typename T>
static Status UpperCholeskyOfInverseUnguarded(const T* a, int64_t n, T* out, int threads) {
  if (n < 0 || (n > 0 && (!a || !out))) return Status::kInvalidArgument;
  // B = J A J (J reverses the order); B = L' L'^T gives A = R R^T with R = J L' J upper, and
  // A^-1 = R^-T R^-1, so U = R^-1 = J L'^-1 J. Reversal is an involution, so everything runs in
  // place in `out` (K = 11008 Hessians are 1 GB each in fp64).
  const size_t total = (size_t)n * n;
  auto reverse_in_place = [&](T* m) {
    for (size_t i = 0; i < total / 2; ++i) std::swap(m[i], m[total - 1 - i]);
  };
  if (out != a) std::copy(a, a + total, out);
  reverse_in_place(out);  // element (i, j) -> (n-1-i, n-1-j) is index total-1-idx
  Status s = CholeskyLower(out, n, threads);
  if (s == Status::kOk) s = InvertLowerTriangular(out, n, threads);
  if (s != Status::kOk) {
    if (out == a) reverse_in_place(out);
    return s;
  }
  reverse_in_place(out);
  return Status::kOk;
}

Status UpperCholeskyOfInverse(const double* a, int64_t n, double* out, int threads) {
  return StatusFromExceptions([&] { return UpperCholeskyOfInverseUnguarded(a, n, out, threads); });
}

Status UpperCholeskyOfInverse(const float* a, int64_t n, float* out, int threads) {
  return StatusFromExceptions([&] { return UpperCholeskyOfInverseUnguarded(a, n, out, threads); });
}

}  // namespace w4a8
