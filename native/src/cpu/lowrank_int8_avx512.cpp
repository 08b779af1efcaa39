// Int8 low-rank building blocks with AVX-512 VNNI (kron_internal.h defines what they compute: exact
// integer products, so every ISA gives the same bits). vpdpbusd multiplies unsigned by signed bytes:
// the factor is the unsigned operand, offset by +128 (a xor of the sign bit, right for -128 too), and
// the activation the signed one; 128 * sum(activation) is taken off at the end. Sums wrap modulo 2^32
// on the way, which the final subtraction undoes (the true result fits in int32: kron_internal.h).
// Compiled with AVX-512 flags (file name).
#include <immintrin.h>

#include <cstring>
#include <vector>

// GCC 12 flags the undefined-vector idiom inside its own AVX-512 headers (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

// Rank components whose regrouped 64-column slice is kept (64 bytes each: 256 KiB at most).
constexpr int32_t kMaxRegroupedRows = 4096;
struct alignas(64) Line64 {
  int8_t bytes[64];
};

inline __mmask64 TailMask64(int32_t left) { return left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1); }

// out[t][c] for MT tokens (rows a[0..MT)) and up to 4 factor rows (f[0..4), duplicates past the
// real ones are computed and dropped).
template <int MT>
void DotsTile(const int8_t* const* a, const int8_t* const* f, int32_t k, const int32_t* a_sum, int32_t ct, int32_t* out,
              int32_t ldo) {
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  __m512i acc[MT][4];
  for (int t = 0; t < MT; ++t)
    for (int c = 0; c < 4; ++c) acc[t][c] = _mm512_setzero_si512();
  int32_t i = 0;
  for (; i + 64 <= k; i += 64) {
    __m512i fv[4];
    for (int c = 0; c < 4; ++c) fv[c] = _mm512_xor_si512(_mm512_loadu_si512((const void*)(f[c] + i)), flip);
    for (int t = 0; t < MT; ++t) {
      const __m512i av = _mm512_loadu_si512((const void*)(a[t] + i));
      for (int c = 0; c < 4; ++c) acc[t][c] = _mm512_dpbusd_epi32(acc[t][c], fv[c], av);
    }
  }
  if (i < k) {  // masked-off activation bytes are 0, so their (offset) factor bytes add nothing
    const __mmask64 mask = TailMask64(k - i);
    __m512i fv[4];
    for (int c = 0; c < 4; ++c) fv[c] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, f[c] + i), flip);
    for (int t = 0; t < MT; ++t) {
      const __m512i av = _mm512_maskz_loadu_epi8(mask, a[t] + i);
      for (int c = 0; c < 4; ++c) acc[t][c] = _mm512_dpbusd_epi32(acc[t][c], fv[c], av);
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int c = 0; c < ct; ++c)
      out[(size_t)t * ldo + c] = (int32_t)((uint32_t)_mm512_reduce_add_epi32(acc[t][c]) - 128u * (uint32_t)a_sum[t]);
}

// Rows [r0, r0 + 4) of f at columns [j, j + 64) (zero past `rows` and past `cols`), regrouped so that
// each dword holds the 4 rows of one column: q[p] 128-bit lane L, dword e = column j + 16 L + 4 p + e.
inline void Regroup(const int8_t* f, int32_t ldf, int32_t rows, int32_t r0, int32_t j, int32_t cols, __m512i q[4]) {
  const __mmask64 mask = TailMask64(cols - j);
  __m512i row[4];
  for (int c = 0; c < 4; ++c)
    row[c] = r0 + c < rows ? _mm512_maskz_loadu_epi8(mask, f + (size_t)(r0 + c) * ldf + j) : _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int c = 0; c < 4; ++c) row[c] = _mm512_xor_si512(row[c], flip);
  const __m512i lo01 = _mm512_unpacklo_epi8(row[0], row[1]), hi01 = _mm512_unpackhi_epi8(row[0], row[1]);
  const __m512i lo23 = _mm512_unpacklo_epi8(row[2], row[3]), hi23 = _mm512_unpackhi_epi8(row[2], row[3]);
  q[0] = _mm512_unpacklo_epi16(lo01, lo23);
  q[1] = _mm512_unpackhi_epi16(lo01, lo23);
  q[2] = _mm512_unpacklo_epi16(hi01, hi23);
  q[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

// One token's 64 columns [j, j + 64) of y from accumulators in Regroup's order: put back in column
// order (a 4 x 4 transpose of 128-bit lanes), the offset taken off, one fma each.
inline void StoreColumns(const __m512i acc[4], int32_t a_sum, float scale, int32_t j, int32_t cols, float* y) {
  const __mmask64 bytes = TailMask64(cols - j);
  const __m512i t0 = _mm512_shuffle_i32x4(acc[0], acc[1], 0x44), t1 = _mm512_shuffle_i32x4(acc[0], acc[1], 0xEE);
  const __m512i t2 = _mm512_shuffle_i32x4(acc[2], acc[3], 0x44), t3 = _mm512_shuffle_i32x4(acc[2], acc[3], 0xEE);
  const __m512i o[4] = {_mm512_shuffle_i32x4(t0, t2, 0x88), _mm512_shuffle_i32x4(t0, t2, 0xDD),
                        _mm512_shuffle_i32x4(t1, t3, 0x88), _mm512_shuffle_i32x4(t1, t3, 0xDD)};
  const __m512i off = _mm512_set1_epi32((int32_t)(128u * (uint32_t)a_sum));
  const __m512 s = _mm512_set1_ps(scale);
  for (int h = 0; h < 4; ++h) {
    const __mmask16 mask = (__mmask16)(bytes >> (16 * h));
    if (!mask) break;
    float* yp = y + j + 16 * h;
    const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(o[h], off));
    if (mask == 0xffff) {  // plain accesses where whole: masked stores are slow on some cores (Zen 4)
      _mm512_storeu_ps(yp, _mm512_fmadd_ps(s, v, _mm512_loadu_ps(yp)));
    } else {
      _mm512_mask_storeu_ps(yp, mask, _mm512_fmadd_ps(s, v, _mm512_maskz_loadu_ps(mask, yp)));
    }
  }
}

// Decode (up to 4 tokens): f streamed row by row, 4 rows at a time over all the columns (4 sequential
// streams the prefetchers follow; a column-slice order reads r rows at once and waits on DRAM),
// the accumulators kept in memory in Regroup's order between row groups.
template <int MT>
void RowsFewTokens(const int8_t* const* a, const int32_t* a_sum, const float* scale, int32_t r, const int8_t* f,
                   int32_t ldf, int32_t cols, float* const* y) {
  const int32_t blocks = (cols + 63) / 64;
  thread_local std::vector<Line64> acc_lines;
  if (acc_lines.size() < (size_t)MT * blocks * 4) acc_lines.resize((size_t)MT * blocks * 4);
  Line64* acc = acc_lines.data();
  for (size_t i = 0; i < (size_t)MT * blocks * 4; ++i) _mm512_store_si512((void*)(acc + i), _mm512_setzero_si512());
  for (int32_t c = 0; c < r; c += 4) {
    __m512i b[MT];
    for (int t = 0; t < MT; ++t) {
      int32_t word;
      std::memcpy(&word, a[t] + c, 4);  // a is zero-padded to a multiple of 4
      b[t] = _mm512_set1_epi32(word);
    }
    for (int32_t blk = 0; blk < blocks; ++blk) {
      // The next row group's line at this column: each group's 4 streams start warm (a row is only a
      // few KiB, too short for the hardware prefetchers to ramp up from DRAM on their own).
      for (int32_t i = c + 4; i < c + 8 && i < r; ++i) _mm_prefetch((const char*)(f + (size_t)i * ldf + 64 * blk), _MM_HINT_T0);
      __m512i q[4];
      Regroup(f, ldf, r, c, 64 * blk, cols, q);
      for (int t = 0; t < MT; ++t) {
        Line64* at = acc + ((size_t)t * blocks + blk) * 4;
        for (int p = 0; p < 4; ++p)
          _mm512_store_si512((void*)(at + p), _mm512_dpbusd_epi32(_mm512_load_si512((const void*)(at + p)), q[p], b[t]));
      }
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int32_t blk = 0; blk < blocks; ++blk) {
      const Line64* at = acc + ((size_t)t * blocks + blk) * 4;
      const __m512i v[4] = {_mm512_load_si512((const void*)at), _mm512_load_si512((const void*)(at + 1)),
                            _mm512_load_si512((const void*)(at + 2)), _mm512_load_si512((const void*)(at + 3))};
      StoreColumns(v, a_sum[t], scale[t], 64 * blk, cols, y[t]);
    }
}

// Prefill: y for MT tokens at columns [j, j + 64); `regrouped` holds Regroup's output for every 4
// rows of this 64-column block (made once for all the token tiles of a slice).
template <int MT>
void RowsTile(const int8_t* const* a, const int32_t* a_sum, const float* scale, int32_t r, int32_t j, int32_t cols,
              const Line64* regrouped, float* const* y) {
  __m512i acc[MT][4];
  for (int t = 0; t < MT; ++t)
    for (int p = 0; p < 4; ++p) acc[t][p] = _mm512_setzero_si512();
  for (int32_t c = 0; c < r; c += 4) {
    __m512i b[MT];
    for (int t = 0; t < MT; ++t) {
      int32_t word;
      std::memcpy(&word, a[t] + c, 4);  // a is zero-padded to a multiple of 4
      b[t] = _mm512_set1_epi32(word);
    }
    // One regrouped register live at a time (16 accumulators + MT broadcasts: no spills).
    for (int p = 0; p < 4; ++p) {
      const __m512i q = _mm512_load_si512((const void*)(regrouped + c + p));
      for (int t = 0; t < MT; ++t) acc[t][p] = _mm512_dpbusd_epi32(acc[t][p], q, b[t]);
    }
  }
  for (int t = 0; t < MT; ++t) StoreColumns(acc[t], a_sum[t], scale[t], j, cols, y[t]);
}

}  // namespace

void Int8DotsAvx512(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t* a_sum, const int8_t* f,
                    int32_t ldf, int32_t* out, int32_t ldo) {
  for (int32_t t = 0; t < m; t += 4) {
    const int mt = m - t < 4 ? m - t : 4;
    const int8_t* ar[4];
    for (int i = 0; i < 4; ++i) ar[i] = a + (size_t)(t + (i < mt ? i : 0)) * lda;
    for (int32_t c = 0; c < r; c += 4) {
      const int32_t ct = r - c < 4 ? r - c : 4;
      const int8_t* fr[4];
      for (int i = 0; i < 4; ++i) fr[i] = f + (size_t)(c + (i < ct ? i : 0)) * ldf;
      int32_t* o = out + (size_t)t * ldo + c;
      switch (mt) {
        case 1: DotsTile<1>(ar, fr, k, a_sum + t, ct, o, ldo); break;
        case 2: DotsTile<2>(ar, fr, k, a_sum + t, ct, o, ldo); break;
        case 3: DotsTile<3>(ar, fr, k, a_sum + t, ct, o, ldo); break;
        default: DotsTile<4>(ar, fr, k, a_sum + t, ct, o, ldo); break;
      }
    }
  }
}

void Int8RowsAddAvx512(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t* a_sum,
                       const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy) {
  const int32_t r4 = (r + 3) / 4 * 4;
  // Tokens [t, t + 4) (fewer at the end): their rows of a and y; returns how many.
  const auto token_tile = [&](int32_t t, const int8_t** ar, float** yr) {
    const int mt = m - t < 4 ? m - t : 4;
    for (int i = 0; i < mt; ++i) {
      ar[i] = a + (size_t)(t + i) * lda;
      yr[i] = y + (size_t)(t + i) * ldy;
    }
    return mt;
  };
  if (m <= 4 || r4 > kMaxRegroupedRows) {  // decode, or a rank too large to keep a slice regrouped
    for (int32_t t = 0; t < m; t += 4) {
      const int8_t* ar[4];
      float* yr[4];
      const int mt = token_tile(t, ar, yr);
      switch (mt) {
        case 1: RowsFewTokens<1>(ar, a_sum + t, scale + t, r, f, ldf, cols, yr); break;
        case 2: RowsFewTokens<2>(ar, a_sum + t, scale + t, r, f, ldf, cols, yr); break;
        case 3: RowsFewTokens<3>(ar, a_sum + t, scale + t, r, f, ldf, cols, yr); break;
        default: RowsFewTokens<4>(ar, a_sum + t, scale + t, r, f, ldf, cols, yr); break;
      }
    }
    return;
  }
  // Prefill: columns outer, in slices of kSliceCols. A slice of f (r * kSliceCols bytes) is regrouped
  // once and stays in L1/L2 while the token tiles pass over it, and each token row of y is read and
  // written in runs of kSliceCols floats (y has left the GEMM's cache: short runs across many rows
  // were the term's largest cost at M = 128).
  constexpr int32_t kSliceCols = 256;
  thread_local std::vector<Line64> slice;
  const size_t per_block = (size_t)r4;  // Line64s per 64 columns
  if (slice.size() < per_block * (kSliceCols / 64)) slice.resize(per_block * (kSliceCols / 64));
  for (int32_t j0 = 0; j0 < cols; j0 += kSliceCols) {
    const int32_t j1 = cols - j0 < kSliceCols ? cols : j0 + kSliceCols;
    for (int32_t j = j0; j < j1; j += 64)
      for (int32_t c = 0; c < r; c += 4) {
        __m512i q[4];
        Regroup(f, ldf, r, c, j, cols, q);
        for (int p = 0; p < 4; ++p) _mm512_store_si512((void*)(slice.data() + per_block * ((j - j0) / 64) + c + p), q[p]);
      }
    for (int32_t t = 0; t < m; t += 4) {
      const int8_t* ar[4];
      float* yr[4];
      const int mt = token_tile(t, ar, yr);
      for (int32_t j = j0; j < j1; j += 64) {
        const Line64* regrouped = slice.data() + per_block * ((j - j0) / 64);
        switch (mt) {
          case 1: RowsTile<1>(ar, a_sum + t, scale + t, r, j, cols, regrouped, yr); break;
          case 2: RowsTile<2>(ar, a_sum + t, scale + t, r, j, cols, regrouped, yr); break;
          case 3: RowsTile<3>(ar, a_sum + t, scale + t, r, j, cols, regrouped, yr); break;
          default: RowsTile<4>(ar, a_sum + t, scale + t, r, j, cols, regrouped, yr); break;
        }
      }
    }
  }
}

}  // namespace w4a8::cpu::kron
