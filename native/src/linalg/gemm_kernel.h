// The packed GEMM, written once with GCC vector extensions and compiled per ISA (gemm.cpp,
// gemm_avx2.cpp, gemm_avx512.cpp each include it inside their own namespace, so the template
// instances never collide at link time). Include <algorithm>, <cstring>, <memory>, <vector>, parallel.h first.
//
// Layout: BLIS-style. B is packed into kc x NR panels, A into MR x kc panels, and an MR x NR
// register tile accumulates op(A) op(B). Threads split the columns of C (each packs its own panels).

template <typename T, int kVecBytes>
struct GemmTraits {
  typedef T Vec __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / (int)sizeof(T);
  static constexpr int kMr = 6;
  static constexpr int kNv = 2;                 // vectors per tile row
  static constexpr int kNr = kNv * kLanes;
  static constexpr int64_t kKc = 256;
  static constexpr int64_t kMc = 96;            // multiple of kMr
  static constexpr int64_t kNc = 2048;          // multiple of kNr for every lane count used
};

template <typename T, int kVecBytes>
inline T ElemA(const T* a, int64_t lda, bool trans, int64_t i, int64_t p) {
  return trans ? a[p * lda + i] : a[i * lda + p];
}

// Packs op(A)[i0:i0+mc, p0:p0+kc] into MR-row panels, zero padded: panel[p][r].
template <typename T, int kVecBytes>
void PackA(const T* a, int64_t lda, bool trans, int64_t i0, int64_t mc, int64_t p0, int64_t kc, T* out) {
  using Tr = GemmTraits<T, kVecBytes>;
  for (int64_t ir = 0; ir < mc; ir += Tr::kMr) {
    const int64_t rows = std::min<int64_t>(Tr::kMr, mc - ir);
    T* panel = out + ir * kc;
    if (!trans) {
      for (int64_t r = 0; r < Tr::kMr; ++r) {
        if (r < rows) {
          const T* src = a + (i0 + ir + r) * lda + p0;
          for (int64_t p = 0; p < kc; ++p) panel[p * Tr::kMr + r] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) panel[p * Tr::kMr + r] = 0;
        }
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const T* src = a + (p0 + p) * lda + i0 + ir;
        int64_t r = 0;
        for (; r < rows; ++r) panel[p * Tr::kMr + r] = src[r];
        for (; r < Tr::kMr; ++r) panel[p * Tr::kMr + r] = 0;
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] into NR-column panels, zero padded: panel[p][c].
template <typename T, int kVecBytes>
void PackB(const T* b, int64_t ldb, bool trans, int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* out) {
  using Tr = GemmTraits<T, kVecBytes>;
  for (int64_t jr = 0; jr < nc; jr += Tr::kNr) {
    const int64_t cols = std::min<int64_t>(Tr::kNr, nc - jr);
    T* panel = out + jr * kc;
    if (!trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const T* src = b + (p0 + p) * ldb + j0 + jr;
        T* dst = panel + p * Tr::kNr;
        int64_t c = 0;
        for (; c < cols; ++c) dst[c] = src[c];
        for (; c < Tr::kNr; ++c) dst[c] = 0;
      }
    } else {
      for (int64_t c = 0; c < Tr::kNr; ++c) {
        if (c < cols) {
          const T* src = b + (j0 + jr + c) * ldb + p0;
          for (int64_t p = 0; p < kc; ++p) panel[p * Tr::kNr + c] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) panel[p * Tr::kNr + c] = 0;
        }
      }
    }
  }
}

// acc[MR][NR] = sum_p a_panel[p][r] * b_panel[p][c]
template <typename T, int kVecBytes>
inline void MicroKernel(int64_t kc, const T* __restrict__ ap, const T* __restrict__ bp,
                        typename GemmTraits<T, kVecBytes>::Vec acc[GemmTraits<T, kVecBytes>::kMr]
                                                                   [GemmTraits<T, kVecBytes>::kNv]) {
  using Tr = GemmTraits<T, kVecBytes>;
  using Vec = typename Tr::Vec;
  Vec c[Tr::kMr][Tr::kNv];
  for (int r = 0; r < Tr::kMr; ++r)
    for (int v = 0; v < Tr::kNv; ++v) c[r][v] = Vec{} ;
  for (int64_t p = 0; p < kc; ++p) {
    Vec bv[Tr::kNv];
    for (int v = 0; v < Tr::kNv; ++v) memcpy(&bv[v], bp + p * Tr::kNr + v * Tr::kLanes, sizeof(Vec));
    const T* arow = ap + p * Tr::kMr;
    for (int r = 0; r < Tr::kMr; ++r) {
      const T av = arow[r];
      for (int v = 0; v < Tr::kNv; ++v) c[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < Tr::kMr; ++r)
    for (int v = 0; v < Tr::kNv; ++v) acc[r][v] = c[r][v];
}

template <typename T, int kVecBytes>
void GemmColumns(bool trans_a, bool trans_b, int64_t m, int64_t k, T alpha, const T* a, int64_t lda,
                 const T* b, int64_t ldb, T beta, T* c, int64_t ldc, int64_t j_begin, int64_t j_end) {
  using Tr = GemmTraits<T, kVecBytes>;
  using Vec = typename Tr::Vec;
  // Sized to this call and left uninitialised (packing writes every element it later reads):
  // Cholesky and GPTQ issue thousands of small GEMMs, where zeroing full-size buffers dominated.
  const int64_t kc_max = std::min<int64_t>(Tr::kKc, std::max<int64_t>(k, 1));
  const int64_t nc_max = std::min<int64_t>(Tr::kNc, j_end - j_begin) + Tr::kNr;
  const int64_t mc_max = std::min<int64_t>(Tr::kMc, m) + Tr::kMr;
  std::unique_ptr<T[]> bpack(new T[(size_t)kc_max * nc_max]);
  std::unique_ptr<T[]> apack(new T[(size_t)kc_max * mc_max]);
  // Scale C by beta once up front so that every k block simply accumulates.
  for (int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = j_begin; j < j_end; ++j) row[j] = 0;
    } else if (beta != T(1)) {
      for (int64_t j = j_begin; j < j_end; ++j) row[j] *= beta;
    }
  }
  if (k == 0 || alpha == T(0)) return;
  for (int64_t jc = j_begin; jc < j_end; jc += Tr::kNc) {
    const int64_t nc = std::min<int64_t>(Tr::kNc, j_end - jc);
    for (int64_t pc = 0; pc < k; pc += Tr::kKc) {
      const int64_t kc = std::min<int64_t>(Tr::kKc, k - pc);
      PackB<T, kVecBytes>(b, ldb, trans_b, pc, kc, jc, nc, bpack.get());
      for (int64_t ic = 0; ic < m; ic += Tr::kMc) {
        const int64_t mc = std::min<int64_t>(Tr::kMc, m - ic);
        PackA<T, kVecBytes>(a, lda, trans_a, ic, mc, pc, kc, apack.get());
        for (int64_t jr = 0; jr < nc; jr += Tr::kNr) {
          const int64_t cols = std::min<int64_t>(Tr::kNr, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += Tr::kMr) {
            const int64_t rows = std::min<int64_t>(Tr::kMr, mc - ir);
            Vec acc[Tr::kMr][Tr::kNv];
            MicroKernel<T, kVecBytes>(kc, apack.get() + ir * kc, bpack.get() + jr * kc, acc);
            for (int64_t r = 0; r < rows; ++r) {
              T* crow = c + (ic + ir + r) * ldc + jc + jr;
              T tmp[Tr::kNr];
              memcpy(tmp, acc[r], sizeof(tmp));
              for (int64_t q = 0; q < cols; ++q) crow[q] += alpha * tmp[q];
            }
          }
        }
      }
    }
  }
}

template <typename T, int kVecBytes>
void GemmImpl(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
              const T* b, int64_t ldb, T beta, T* c, int64_t ldc, int threads) {
  using Tr = GemmTraits<T, kVecBytes>;
  if (m <= 0 || n <= 0) return;
  // Split columns when C is wide enough; small problems stay on one thread.
  const double work = (double)m * (double)n * (double)k;
  if (work < 2e6) threads = 1;
  ParallelRanges(threads, n, Tr::kNr, [&](int64_t j0, int64_t j1) {
    GemmColumns<T, kVecBytes>(trans_a, trans_b, m, k, alpha, a, lda, b, ldb, beta, c, ldc, j0, j1);
  });
}
