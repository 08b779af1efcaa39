// Linear algebra checked by its mathematical properties: GEMM vs the triple loop (every transpose,
// odd shapes), L L^T = A, L L^-1 = I, U^T U = A^-1, Q^T Q = I and Q R = A, U S V^T ~ A with
// orthonormal U, V and descending S. Every GEMM path the CPU has (generic, avx2, avx512) runs all of
// it; a path the CPU lacks prints a SKIP line. Also: results independent of the chunk count, and an
// exception in a pool worker reaching the caller as a Status.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>
#include <vector>

#include "cpu/dispatch.h"
#include "linalg/parallel.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"
#include "test_check.h"

using namespace w4a8;


static std::mt19937_64 rng(42);
static std::vector<double> Random(size_t n) {
  std::normal_distribution<double> d(0, 1);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

static std::vector<double> Spd(int64_t n) {
  auto x = Random((size_t)(n + 5) * n);
  std::vector<double> a((size_t)n * n);
  GemmRefF64(true, false, n, n, n + 5, 1.0, x.data(), n, x.data(), n, 0.0, a.data(), n);
  for (int64_t i = 0; i < n; ++i) a[i * n + i] += 0.1;
  return a;
}

static double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

static void TestGemm() {
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 129}, {100, 37, 300}, {6, 300, 17}, {257, 129, 64}};
  for (auto& sh : shapes) {
    const int64_t m = sh[0], n = sh[1], k = sh[2];
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int threads = 1; threads <= 2; ++threads) {
          auto a = Random((size_t)m * k), b = Random((size_t)k * n), c0 = Random((size_t)m * n);
          const int64_t lda = ta ? m : k, ldb = tb ? k : n;
          std::vector<double> ref = c0, got = c0;
          GemmRefF64(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, ref.data(), n);
          GemmF64(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, got.data(), n, threads);
          CHECK(MaxAbsDiff(ref, got) < 1e-10 * (k + 1), "GemmF64 %lldx%lldx%lld ta=%d tb=%d", (long long)m,
                (long long)n, (long long)k, ta, tb);
          // Chunking splits columns only: any chunk count gives the same bits.
          std::vector<double> got5 = c0;
          GemmF64(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 2.0, got5.data(), n, 5);
          CHECK(got5 == got, "GemmF64 %lldx%lldx%lld differs between %d and 5 chunks", (long long)m, (long long)n,
                (long long)k, threads);
          std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(m * n, NAN);
          GemmF32(ta, tb, m, n, k, 0.5f, af.data(), lda, bf.data(), ldb, 0.0f, cf.data(), n, threads);
          std::vector<double> ref0(m * n);
          GemmRefF64(ta, tb, m, n, k, 0.5, a.data(), lda, b.data(), ldb, 0.0, ref0.data(), n);
          double err = 0;
          for (size_t i = 0; i < ref0.size(); ++i) err = std::max(err, std::fabs(ref0[i] - cf[i]));
          CHECK(err < 1e-4 * std::sqrt((double)k + 1), "GemmF32 %lldx%lldx%lld ta=%d tb=%d err %g", (long long)m,
                (long long)n, (long long)k, ta, tb, err);
        }
  }
  // Leading dimensions larger than the row: a sub-block of a bigger matrix.
  auto big = Random(40 * 50);
  std::vector<double> ref(10 * 12), got(10 * 12);
  GemmRefF64(false, false, 10, 12, 9, 1.0, big.data() + 3, 50, big.data() + 50 * 20 + 7, 50, 0.0, ref.data(), 12);
  GemmF64(false, false, 10, 12, 9, 1.0, big.data() + 3, 50, big.data() + 50 * 20 + 7, 50, 0.0, got.data(), 12);
  CHECK(MaxAbsDiff(ref, got) < 1e-12, "GemmF64 with lda > k");
}

static void TestCholesky() {
  for (int64_t n : {1, 5, 127, 128, 300}) {
    auto a = Spd(n);
    auto l = a;
    CHECK(CholeskyLower(l.data(), n) == Status::kOk, "Cholesky n=%lld", (long long)n);
    std::vector<double> llt((size_t)n * n);
    GemmRefF64(false, true, n, n, n, 1.0, l.data(), n, l.data(), n, 0.0, llt.data(), n);
    double scale = 0;
    for (double x : a) scale = std::max(scale, std::fabs(x));
    CHECK(MaxAbsDiff(llt, a) < 1e-11 * scale, "L L^T != A (n=%lld)", (long long)n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) CHECK(l[i * n + j] == 0, "upper not zero");
    auto linv = l;
    CHECK(InvertLowerTriangular(linv.data(), n) == Status::kOk, "invert");
    std::vector<double> eye((size_t)n * n), want((size_t)n * n, 0.0);
    GemmRefF64(false, false, n, n, n, 1.0, l.data(), n, linv.data(), n, 0.0, eye.data(), n);
    for (int64_t i = 0; i < n; ++i) want[i * n + i] = 1;
    CHECK(MaxAbsDiff(eye, want) < 1e-8, "L L^-1 != I (n=%lld) err %g", (long long)n, MaxAbsDiff(eye, want));
    // Cholesky inverse and the upper factor of the inverse.
    std::vector<double> ainv((size_t)n * n), prod((size_t)n * n);
    CHECK(CholeskyInverse(a.data(), n, ainv.data()) == Status::kOk, "CholeskyInverse");
    GemmRefF64(false, false, n, n, n, 1.0, a.data(), n, ainv.data(), n, 0.0, prod.data(), n);
    CHECK(MaxAbsDiff(prod, want) < 1e-7, "A A^-1 != I err %g", MaxAbsDiff(prod, want));
    std::vector<double> uf((size_t)n * n), utu((size_t)n * n);
    CHECK(UpperCholeskyOfInverse(a.data(), n, uf.data()) == Status::kOk, "UpperCholeskyOfInverse");
    for (int64_t i = 0; i < n; ++i) {
      CHECK(uf[i * n + i] > 0, "U diagonal positive");
      for (int64_t j = 0; j < i; ++j) CHECK(uf[i * n + j] == 0, "U is upper");
    }
    GemmRefF64(true, false, n, n, n, 1.0, uf.data(), n, uf.data(), n, 0.0, utu.data(), n);
    double ref_scale = 0;
    for (double x : ainv) ref_scale = std::max(ref_scale, std::fabs(x));
    CHECK(MaxAbsDiff(utu, ainv) < 1e-8 * ref_scale, "U^T U != A^-1");
    auto in_place = a;
    CHECK(UpperCholeskyOfInverse(in_place.data(), n, in_place.data()) == Status::kOk, "in place");
    CHECK(in_place == uf, "in-place UpperCholeskyOfInverse differs");
    // Triangular solves.
    auto b = Random((size_t)n * 3), x = b;
    SolveLowerLeft(l.data(), n, x.data(), 3);
    std::vector<double> lx((size_t)n * 3);
    GemmRefF64(false, false, n, 3, n, 1.0, l.data(), n, x.data(), 3, 0.0, lx.data(), 3);
    CHECK(MaxAbsDiff(lx, b) < 1e-8, "L X != B");
    auto br = Random((size_t)3 * n), xr = br;
    SolveLowerTransposedRight(l.data(), n, xr.data(), 3);
    std::vector<double> xlt((size_t)3 * n);
    GemmRefF64(false, true, 3, n, n, 1.0, xr.data(), n, l.data(), n, 0.0, xlt.data(), n);
    CHECK(MaxAbsDiff(xlt, br) < 1e-8, "X L^T != B");
  }
  // Not positive definite -> an error, not NaN.
  std::vector<double> bad = {1, 2, 2, 1};
  CHECK(CholeskyLower(bad.data(), 2) == Status::kNumericalError, "indefinite accepted");
}

// fp32 factorization (GPTQ's largest Hessians) against the fp64 one on odd sizes, blocked and not:
// the same U to fp32 accuracy, upper with a positive diagonal, in place equal to out of place.
static void TestCholeskyF32() {
  for (int64_t n : {3, 129, 301}) {
    auto a = Spd(n);
    std::vector<double> u64((size_t)n * n);
    CHECK(UpperCholeskyOfInverse(a.data(), n, u64.data()) == Status::kOk, "fp64 U n=%lld", (long long)n);
    std::vector<float> a32(a.begin(), a.end()), u32((size_t)n * n);
    CHECK(UpperCholeskyOfInverse(a32.data(), n, u32.data()) == Status::kOk, "fp32 U n=%lld", (long long)n);
    double scale = 0, diff = 0;
    for (size_t i = 0; i < u64.size(); ++i) {
      scale = std::max(scale, std::fabs(u64[i]));
      diff = std::max(diff, std::fabs(u64[i] - (double)u32[i]));
    }
    std::printf("  fp32 UpperCholeskyOfInverse n=%lld: max |U32 - U64| / max |U64| = %.3g\n", (long long)n, diff / scale);
    CHECK(diff < 1e-3 * scale, "fp32 U differs from fp64 by %g of %g (n=%lld)", diff, scale, (long long)n);
    bool upper = true, positive = true;
    for (int64_t i = 0; i < n; ++i) {
      positive &= u32[i * n + i] > 0;
      for (int64_t j = 0; j < i; ++j) upper &= u32[i * n + j] == 0;
    }
    CHECK(upper && positive, "fp32 U is upper with a positive diagonal (n=%lld)", (long long)n);
    auto in_place = a32;
    CHECK(UpperCholeskyOfInverse(in_place.data(), n, in_place.data()) == Status::kOk, "fp32 in place");
    CHECK(in_place == u32, "fp32 in-place UpperCholeskyOfInverse differs");
  }
  std::vector<float> bad = {1, 2, 2, 1};
  CHECK(CholeskyLower(bad.data(), 2) == Status::kNumericalError, "fp32: indefinite accepted");
}

static void TestQr() {
  const int64_t m = 50, n = 20;
  auto a = Random(m * n);
  std::vector<double> q(m * n), r(n * n), qtq(n * n), qr(m * n), eye(n * n, 0.0);
  CHECK(HouseholderQr(a.data(), m, n, q.data(), r.data()) == Status::kOk, "QR");
  GemmRefF64(true, false, n, n, m, 1.0, q.data(), n, q.data(), n, 0.0, qtq.data(), n);
  for (int64_t i = 0; i < n; ++i) eye[i * n + i] = 1;
  CHECK(MaxAbsDiff(qtq, eye) < 1e-12, "Q^T Q != I");
  GemmRefF64(false, false, m, n, n, 1.0, q.data(), n, r.data(), n, 0.0, qr.data(), n);
  CHECK(MaxAbsDiff(qr, a) < 1e-12, "Q R != A");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) CHECK(r[i * n + j] == 0, "R upper");
}

static void CheckOrthonormalColumns(const std::vector<double>& u, int64_t m, int64_t n, const char* what) {
  std::vector<double> g(n * n), eye(n * n, 0.0);
  GemmRefF64(true, false, n, n, m, 1.0, u.data(), n, u.data(), n, 0.0, g.data(), n);
  for (int64_t i = 0; i < n; ++i) eye[i * n + i] = 1;
  CHECK(MaxAbsDiff(g, eye) < 1e-9, "%s not orthonormal (err %g)", what, MaxAbsDiff(g, eye));
}

static void TestSvd() {
  // Exact Jacobi SVD reconstructs A.
  const int64_t m = 40, n = 12;
  auto a = Random(m * n);
  std::vector<double> u(m * n), s(n), vt(n * n);
  CHECK(JacobiSvd(a.data(), m, n, u.data(), s.data(), vt.data()) == Status::kOk, "Jacobi");
  for (int64_t i = 1; i < n; ++i) CHECK(s[i - 1] >= s[i], "S descending");
  CheckOrthonormalColumns(u, m, n, "U");
  std::vector<double> v(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) v[i * n + j] = vt[j * n + i];
  CheckOrthonormalColumns(v, n, n, "V");
  std::vector<double> us(m * n), rec(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) us[i * n + j] = u[i * n + j] * s[j];
  GemmRefF64(false, false, m, n, n, 1.0, us.data(), n, vt.data(), n, 0.0, rec.data(), n);
  CHECK(MaxAbsDiff(rec, a) < 1e-10, "U S V^T != A");

  // Randomized truncated SVD of an exactly rank-6 matrix (plus tiny noise) recovers it.
  const int64_t M = 200, N = 150, R = 6;
  auto left = Random(M * R), right = Random(R * N);
  std::vector<double> lowrank(M * N);
  GemmRefF64(false, false, M, N, R, 1.0, left.data(), R, right.data(), N, 0.0, lowrank.data(), N);
  auto noise = Random(M * N);
  for (size_t i = 0; i < lowrank.size(); ++i) lowrank[i] += 1e-6 * noise[i];
  std::vector<double> tu(M * R), ts(R), tvt(R * N);
  CHECK(TruncatedSvd(lowrank.data(), M, N, R, tu.data(), ts.data(), tvt.data()) == Status::kOk, "TruncatedSvd");
  for (int64_t i = 1; i < R; ++i) CHECK(ts[i - 1] >= ts[i], "truncated S descending");
  CheckOrthonormalColumns(tu, M, R, "truncated U");
  std::vector<double> tv(N * R);
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < N; ++j) tv[j * R + i] = tvt[i * N + j];
  CheckOrthonormalColumns(tv, N, R, "truncated V");
  std::vector<double> tus(M * R), trec(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < R; ++j) tus[i * R + j] = tu[i * R + j] * ts[j];
  GemmRefF64(false, false, M, N, R, 1.0, tus.data(), R, tvt.data(), N, 0.0, trec.data(), N);
  double num = 0, den = 0;
  for (size_t i = 0; i < trec.size(); ++i) {
    num += (trec[i] - lowrank[i]) * (trec[i] - lowrank[i]);
    den += lowrank[i] * lowrank[i];
  }
  CHECK(std::sqrt(num / den) < 1e-5, "rank-6 reconstruction rel err %g", std::sqrt(num / den));
}

// A task that throws on a pool worker: the exception reaches the caller (the pool rethrows it) after
// every chunk finished, and StatusFromExceptions turns it into a status instead of terminating.
static void TestWorkerExceptions() {
  std::atomic<int> ran{0};
  bool caught = false;
  try {
    ParallelRanges(4, 1000, 1, [&](int64_t b, int64_t) {
      ran.fetch_add(1);
      if (b > 0) throw std::bad_alloc();
    });
  } catch (const std::bad_alloc&) {
    caught = true;
  }
  CHECK(caught, "a worker's bad_alloc did not reach the caller");
  CHECK(ran.load() == 4, "only %d of 4 chunks ran", ran.load());
  const Status s = StatusFromExceptions([] {
    ParallelRanges(3, 30, 1, [](int64_t b, int64_t) {
      if (b >= 10) throw std::bad_alloc();
    });
    return Status::kOk;
  });
  CHECK(s == Status::kOutOfMemory, "bad_alloc in a worker became status %d", (int)s);
  const Status s2 = StatusFromExceptions([]() -> Status { throw std::runtime_error("x"); });
  CHECK(s2 == Status::kInvalidArgument, "other exceptions became status %d", (int)s2);
}

int main() {
  std::printf("default GEMM path: %s, %d pool threads\n", GemmIsa(), cpu::NumThreads());
  struct Path {
    const char* name;
    cpu::Isa isa;
  };
  const Path paths[] = {{"generic", cpu::Isa::kScalar}, {"avx2", cpu::Isa::kAvx2}, {"avx512", cpu::Isa::kAvx512Vnni}};
  for (const Path& p : paths) {
    if (!cpu::IsaAvailable(p.isa)) {
      std::printf("SKIP: linalg %s path not available on this CPU (%s)\n", p.name, cpu::IsaUnavailableReason(p.isa));
      continue;
    }
    ScopedLinalgIsa scope(p.isa);
    CHECK(scope.ok() && std::strcmp(GemmIsa(), p.name) == 0, "ScopedLinalgIsa(%s) runs %s", p.name, GemmIsa());
    std::printf("linalg path %s: GEMM, Cholesky, QR, SVD\n", GemmIsa());
    const int before = g_failures;
    TestGemm();
    TestCholesky();
    TestCholeskyF32();
    TestQr();
    TestSvd();
    if (g_failures != before) std::printf("  path %s failed\n", p.name);
  }
  CHECK(cpu::DispatchFor(cpu::Isa::kAmx).linalg.gemm_f64 == cpu::DispatchFor(cpu::Isa::kAvx512Vnni).linalg.gemm_f64,
        "amx must map to the avx512 GEMM");
  TestWorkerExceptions();
  return Finish();
}
