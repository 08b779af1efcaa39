// Kronecker adapter y += sum_i (A_i kron B_i) x, as Y += A_i (X B_i^T) per token (cpu_adapters.h
// defines the index convention), its float64 reference, and the fused W4A8 + Kronecker call.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "cpu/dispatch.h"
#include "kron_internal.h"
#include "thread_pool.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/linalg.h"

namespace w4a8::cpu {
namespace {

// Below this many multiply-adds per call the adapter terms run on the calling thread.
constexpr double kSerialMultiplyAdds = 1 << 20;

bool ValidKron(const KronTerms& kt) {
  return kt.terms >= 1 && kt.a_rows >= 1 && kt.a_cols >= 1 && kt.b_rows >= 1 && kt.b_cols >= 1 && kt.a && (kt.b || kt.b_t) &&
         KronN(kt) <= INT32_MAX && KronK(kt) <= INT32_MAX;
}


}  // namespace

// Same update order as the SIMD kernels (fma per kk, in order), so every ISA matches bit for bit.
void kron::MatMulAddScalar(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* B,
                           int32_t ldb, float* C, int32_t ldc) {
  for (int32_t i = 0; i < M; ++i)
    for (int32_t j = 0; j < N; ++j) {
      float c = C[(size_t)i * ldc + j];
      for (int32_t kk = 0; kk < K; ++kk) c = std::fma(A[(size_t)i * lda + kk], B[(size_t)kk * ldb + j], c);
      C[(size_t)i * ldc + j] = c;
    }
}

Status KroneckerAdapterAdd(const KronTerms& kt, int32_t m, const float* x, float* y, Isa isa) {
  if (!ValidKron(kt) || m < 1 || !x || !y) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const kron::MatMulAddFn mm = DispatchFor(isa).kron_matmul_add;
  const int32_t terms = kt.terms, ar = kt.a_rows, ac = kt.a_cols, br = kt.b_rows, bc = kt.b_cols;
  const int64_t n = KronN(kt);
  // B_i^T [bc][br] per term: given, or transposed here (tiled: a plain strided transpose costs as
  // much as the adapter itself for 256x256 factors).
  std::vector<float> bt_own;
  const float* bt = kt.b_t;
  if (!bt) {
    bt_own.resize((size_t)terms * bc * br);
    for (int32_t i = 0; i < terms; ++i) {
      const float* B = kt.b + (size_t)i * br * bc;
      float* D = bt_own.data() + (size_t)i * bc * br;
      for (int32_t q0 = 0; q0 < br; q0 += 16)
        for (int32_t s0 = 0; s0 < bc; s0 += 16)
          for (int32_t q = q0; q < std::min(q0 + 16, br); ++q)
            for (int32_t s = s0; s < std::min(s0 + 16, bc); ++s) D[(size_t)s * br + q] = B[(size_t)q * bc + s];
    }
    bt = bt_own.data();
  }
  // T = X B_i^T for a chunk of tokens and a group of terms: rows (token, r), term i at columns
  // (i - first) * br. Chunk and group are sized so T stays near 512 KiB (cache-resident between
  // the two passes); a decode step with 100 terms of 64 x 64 takes 4 groups, 8 pool dispatches.
  constexpr int64_t kTFloats = (int64_t)1 << 17;
  const int64_t per = (int64_t)ac * br;  // T values per token and term
  const int32_t group = (int32_t)std::max<int64_t>(1, std::min<int64_t>(terms, kTFloats / per));
  const int32_t chunk = (int32_t)std::max<int64_t>(1, std::min<int64_t>(m, kTFloats / (per * group)));
  const int64_t t_cols = (int64_t)group * br;
  std::vector<float> tmat((size_t)chunk * ac * t_cols);
  const int64_t threads = NumThreads();
  // A small call (one LoKr term at decode: a few hundred thousand multiply-adds) runs on this
  // thread: waking the pool costs more than the work, and far more on a busy machine.
  const bool serial = (double)m * terms * ac * br * (bc + ar) < kSerialMultiplyAdds;
  const auto run = [serial](int64_t count, const std::function<void(int64_t)>& fn) {
    if (!serial) return ParallelFor(count, fn);
    for (int64_t i = 0; i < count; ++i) fn(i);
  };
  for (int32_t t0 = 0; t0 < m; t0 += chunk) {
    const int32_t mc = std::min(chunk, m - t0);
    const int64_t rows = (int64_t)mc * ac, y_rows = (int64_t)mc * ar;
    for (int32_t g0 = 0; g0 < terms; g0 += group) {
      const int32_t gc = std::min(group, terms - g0);
      // Pass 1: tasks are (term, row block); each zeroes and fills its own block of T.
      const int64_t row_splits = std::max<int64_t>(1, std::min<int64_t>((rows + 7) / 8, (4 * threads + gc - 1) / gc));
      run((int64_t)gc * row_splits, [&](int64_t task) {
        const int64_t i = task / row_splits, part = task % row_splits;
        const int64_t r0 = rows * part / row_splits, r1 = rows * (part + 1) / row_splits;
        float* T = tmat.data() + r0 * t_cols + i * br;
        for (int64_t r = r0; r < r1; ++r) std::fill(T + (r - r0) * t_cols, T + (r - r0) * t_cols + br, 0.f);
        if (r1 > r0)
          mm((int32_t)(r1 - r0), br, bc, x + ((int64_t)t0 * ac + r0) * bc, bc, bt + (size_t)(g0 + i) * bc * br, br, T,
             (int32_t)t_cols);
      });
      // Pass 2: row (t, p) of Y += sum_i A_i[p][:] T_i[t], terms in order; one task per thread,
      // since each task reads the whole of T.
      const int64_t y_tasks = std::max<int64_t>(1, std::min<int64_t>((y_rows + 7) / 8, threads));
      run(y_tasks, [&](int64_t task) {
        const int64_t r0 = y_rows * task / y_tasks, r1 = y_rows * (task + 1) / y_tasks;
        for (int64_t r = r0; r < r1;) {
          const int64_t t = r / ar, p = r % ar, rows_now = std::min<int64_t>(r1 - r, ar - p);
          float* yt = y + (t0 + t) * n + p * br;
          const float* T = tmat.data() + t * ac * t_cols;
          for (int32_t i = 0; i < gc; ++i)
            mm((int32_t)rows_now, br, ac, kt.a + (size_t)(g0 + i) * ar * ac + p * ac, ac, T + (size_t)i * br, (int32_t)t_cols, yt, br);
          r += rows_now;
        }
      });
    }
  }
  return Status::kOk;
}

Status KroneckerAdapterAddReference(const KronTerms& kt, int32_t m, const float* x, float* y) {
  if (!ValidKron(kt) || m < 1 || !x || !y) return Status::kInvalidArgument;
  const int32_t ar = kt.a_rows, ac = kt.a_cols, br = kt.b_rows, bc = kt.b_cols;
  std::vector<double> tmat((size_t)ac * br), acc((size_t)ar * br);
  for (int32_t t = 0; t < m; ++t) {
    const float* xt = x + (size_t)t * KronK(kt);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int32_t i = 0; i < kt.terms; ++i) {
      const float* A = kt.a + (size_t)i * ar * ac;
      // B[q][c], from b or (when only it is given) from b_t.
      const auto B = [&](int32_t q, int32_t c) {
        return kt.b ? kt.b[((size_t)i * br + q) * bc + c] : kt.b_t[((size_t)i * bc + c) * br + q];
      };
      for (int32_t r = 0; r < ac; ++r)
        for (int32_t q = 0; q < br; ++q) {
          double s = 0;
          for (int32_t c = 0; c < bc; ++c) s += (double)xt[(size_t)r * bc + c] * B(q, c);
          tmat[(size_t)r * br + q] = s;
        }
      for (int32_t p = 0; p < ar; ++p)
        for (int32_t q = 0; q < br; ++q) {
          double s = 0;
          for (int32_t r = 0; r < ac; ++r) s += (double)A[(size_t)p * ac + r] * tmat[(size_t)r * br + q];
          acc[(size_t)p * br + q] += s;
        }
    }
    float* yt = y + (size_t)t * KronN(kt);
    for (size_t j = 0; j < acc.size(); ++j) yt[j] = (float)((double)yt[j] + acc[j]);
  }
  return Status::kOk;
}

// From this many rows LowRankAdd runs the linalg GEMM; below it (decode) a streaming product.
constexpr int32_t kLowRankGemmRows = 8;

Status LowRankAdd(const LowRankTerm& lr, int32_t m, const float* x, float* y, Isa isa) {
  if (lr.k < 1 || lr.r < 1 || lr.n < 1 || !lr.u || !lr.v || m < 1 || !x || !y) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const int32_t k = lr.k, r = lr.r, n = lr.n;
  std::vector<float> t((size_t)m * r, 0.f);
  if (m >= kLowRankGemmRows) {
    // Several tokens: the blocked, packed linalg GEMM (its result does not depend on the thread count).
    GemmF32(false, false, m, r, k, 1.0f, x, k, lr.u, r, 0.0f, t.data(), r);
    GemmF32(false, false, m, n, r, 1.0f, t.data(), r, lr.v, n, 1.0f, y, n);
    return Status::kOk;
  }
  const kron::MatMulAddFn mm = DispatchFor(isa).kron_matmul_add;
  // Decode: both factors stream from memory once. x U is split along K into fixed chunks of whole
  // rows of U (contiguous reads), each task summing its chunk into its own partial T, and the
  // partials are added in chunk order: the split, hence the result, does not depend on the threads.
  constexpr int32_t kChunkK = 512;
  const int64_t k_chunks = (k + kChunkK - 1) / kChunkK;
  std::vector<float> partial((size_t)k_chunks * m * r, 0.f);
  ParallelFor(k_chunks, [&](int64_t c) {
    const int32_t k0 = (int32_t)(c * kChunkK), k1 = std::min(k, k0 + kChunkK);
    mm(m, r, k1 - k0, x + k0, k, lr.u + (size_t)k0 * r, r, partial.data() + (size_t)c * m * r, r);
  });
  for (int64_t c = 0; c < k_chunks; ++c)
    for (size_t i = 0; i < t.size(); ++i) t[i] += partial[(size_t)c * m * r + i];
  // (x U) V: columns of V split among tasks (each reads whole runs of V's rows); 16-wide chunks keep
  // the SIMD rows whole.
  const auto column_tasks = [](int32_t cols) { return std::max<int64_t>(1, std::min<int64_t>((cols + 15) / 16, 4LL * NumThreads())); };
  const int64_t y_tasks = column_tasks(n);
  ParallelFor(y_tasks, [&](int64_t task) {
    const int32_t c0 = (int32_t)(n * task / y_tasks), c1 = (int32_t)(n * (task + 1) / y_tasks);
    if (c1 > c0) mm(m, c1 - c0, r, t.data(), r, lr.v + c0, n, y + c0, n);
  });
  return Status::kOk;
}

Status LowRankAddReference(const LowRankTerm& lr, int32_t m, const float* x, float* y) {
  if (lr.k < 1 || lr.r < 1 || lr.n < 1 || !lr.u || !lr.v || m < 1 || !x || !y) return Status::kInvalidArgument;
  std::vector<double> t((size_t)lr.r);
  for (int32_t i = 0; i < m; ++i) {
    const float* xi = x + (size_t)i * lr.k;
    for (int32_t c = 0; c < lr.r; ++c) {
      double s = 0;
      for (int32_t kk = 0; kk < lr.k; ++kk) s += (double)xi[kk] * lr.u[(size_t)kk * lr.r + c];
      t[c] = s;
    }
    float* yi = y + (size_t)i * lr.n;
    for (int32_t j = 0; j < lr.n; ++j) {
      double s = 0;
      for (int32_t c = 0; c < lr.r; ++c) s += t[c] * lr.v[(size_t)c * lr.n + j];
      yi[j] = (float)((double)yi[j] + s);
    }
  }
  return Status::kOk;
}

Status GemmW4A8Kron(const PackedWeight& w, const KronTerms& kt, const GemmArgs& a) {
  if (!ValidKron(kt) || KronN(kt) != w.n() || KronK(kt) != w.k()) return Status::kInvalidArgument;
  // Two passes over y in one call: the adapter is a few percent of the GEMM's work, and y is still
  // in cache for small m; a truly fused tile loop would need the adapter inside the W4A8 kernels.
  const Status s = GemmW4A8(w, a);
  if (s != Status::kOk) return s;
  return KroneckerAdapterAdd(kt, a.m, a.x, a.y, w.isa());
}

Status GemmW4A8KronReference(const QuantizedWeight& w, const KronTerms& kt, const GemmArgs& a) {
  if (!ValidKron(kt) || KronN(kt) != w.n || KronK(kt) != w.k) return Status::kInvalidArgument;
  const Status s = GemmW4A8Reference(w, a);
  if (s != Status::kOk) return s;
  return KroneckerAdapterAddReference(kt, a.m, a.x, a.y);
}

}  // namespace w4a8::cpu
