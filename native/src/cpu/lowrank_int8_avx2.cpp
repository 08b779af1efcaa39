// Int8 low-rank building blocks with AVX2 (kron_internal.h defines what they compute: exact integer
// products, so every ISA gives the same bits). vpmaddubsw multiplies unsigned by signed bytes into
// saturating int16 pairs: the unsigned operand is |factor| (0..128, -128 included) and the signed one
// the activation with the factor's sign (|activation| <= 127), so a pair is at most 2 * 128 * 127 <
// 2^15 and never saturates; vpmaddwd with ones then sums pairs into int32. Compiled with AVX2 flags.
#include <immintrin.h>

#include <cstring>

#include "kron_internal.h"

namespace w4a8::cpu::kron {
namespace {

// 4 products of one 32-byte step: acc += sum over byte quads of f * a (a = activation).
inline __m256i MulAdd(__m256i acc, __m256i f_abs, __m256i f, __m256i a) {
  const __m256i pairs = _mm256_maddubs_epi16(f_abs, _mm256_sign_epi8(a, f));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

inline int32_t SumLanes(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i s2 = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xb1)));
}

inline __m256i Load32(const int8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }

// The first `left` (< 32) bytes of p, zero after.
inline __m256i LoadTail(const int8_t* p, int32_t left) {
  alignas(32) int8_t buf[32] = {};
  std::memcpy(buf, p, (size_t)left);
  return _mm256_load_si256((const __m256i*)buf);
}

template <int MT>
void DotsTile(const int8_t* const* a, const int8_t* const* f, int32_t k, int32_t ct, int32_t* out, int32_t ldo) {
  __m256i acc[MT][4];
  for (int t = 0; t < MT; ++t)
    for (int c = 0; c < 4; ++c) acc[t][c] = _mm256_setzero_si256();
  for (int32_t i = 0; i < k; i += 32) {
    const bool whole = i + 32 <= k;
    __m256i fv[4], fa[4];
    for (int c = 0; c < 4; ++c) {
      fv[c] = whole ? Load32(f[c] + i) : LoadTail(f[c] + i, k - i);
      fa[c] = _mm256_abs_epi8(fv[c]);
    }
    for (int t = 0; t < MT; ++t) {
      const __m256i av = whole ? Load32(a[t] + i) : LoadTail(a[t] + i, k - i);
      for (int c = 0; c < 4; ++c) acc[t][c] = MulAdd(acc[t][c], fa[c], fv[c], av);
    }
  }
  for (int t = 0; t < MT; ++t)
    for (int c = 0; c < ct; ++c) out[(size_t)t * ldo + c] = SumLanes(acc[t][c]);
}

// Rows [r0, r0 + 4) of f at columns [j, j + 32) (zero past `rows` and `cols`), regrouped so that each
// dword holds the 4 rows of one column: q[p] 128-bit lane L, dword e = column j + 16 L + 4 p + e.
inline void Regroup(const int8_t* f, int32_t ldf, int32_t rows, int32_t r0, int32_t j, int32_t cols, __m256i q[4]) {
  __m256i row[4];
  for (int c = 0; c < 4; ++c) {
    const int8_t* p = f + (size_t)(r0 + c) * ldf + j;
    row[c] = r0 + c >= rows ? _mm256_setzero_si256() : cols - j >= 32 ? Load32(p) : LoadTail(p, cols - j);
  }
  const __m256i lo01 = _mm256_unpacklo_epi8(row[0], row[1]), hi01 = _mm256_unpackhi_epi8(row[0], row[1]);
  const __m256i lo23 = _mm256_unpacklo_epi8(row[2], row[3]), hi23 = _mm256_unpackhi_epi8(row[2], row[3]);
  q[0] = _mm256_unpacklo_epi16(lo01, lo23);
  q[1] = _mm256_unpackhi_epi16(lo01, lo23);
  q[2] = _mm256_unpacklo_epi16(hi01, hi23);
  q[3] = _mm256_unpackhi_epi16(hi01, hi23);
}

template <int MT>
void RowsTile(const int8_t* const* a, const float* scale, int32_t r, const int8_t* f, int32_t ldf, int32_t j, int32_t cols,
              float* const* y) {
  __m256i acc[MT][4];
  for (int t = 0; t < MT; ++t)
    for (int p = 0; p < 4; ++p) acc[t][p] = _mm256_setzero_si256();
  for (int32_t c = 0; c < r; c += 4) {
    __m256i q[4], qa[4];
    Regroup(f, ldf, r, c, j, cols, q);
    for (int p = 0; p < 4; ++p) qa[p] = _mm256_abs_epi8(q[p]);
    for (int t = 0; t < MT; ++t) {
      int32_t word;
      std::memcpy(&word, a[t] + c, 4);  // a is zero-padded to a multiple of 4
      const __m256i b = _mm256_set1_epi32(word);
      for (int p = 0; p < 4; ++p) acc[t][p] = MulAdd(acc[t][p], qa[p], q[p], b);
    }
  }
  for (int t = 0; t < MT; ++t) {
    // Back to column order: lane 0 of q0, q1 holds columns 0-7, of q2, q3 columns 8-15; lane 1 16-31.
    const __m256i o[4] = {_mm256_permute2x128_si256(acc[t][0], acc[t][1], 0x20), _mm256_permute2x128_si256(acc[t][2], acc[t][3], 0x20),
                          _mm256_permute2x128_si256(acc[t][0], acc[t][1], 0x31), _mm256_permute2x128_si256(acc[t][2], acc[t][3], 0x31)};
    const __m256 s = _mm256_set1_ps(scale[t]);
    float* yt = y[t] + j;
    for (int h = 0; h < 4; ++h) {
      const int32_t left = cols - j - 8 * h;
      if (left <= 0) break;
      const __m256 v = _mm256_cvtepi32_ps(o[h]);
      if (left >= 8) {
        _mm256_storeu_ps(yt + 8 * h, _mm256_fmadd_ps(s, v, _mm256_loadu_ps(yt + 8 * h)));
      } else {
        alignas(32) float buf[8];
        std::memcpy(buf, yt + 8 * h, sizeof(float) * left);
        _mm256_store_ps(buf, _mm256_fmadd_ps(s, v, _mm256_load_ps(buf)));
        std::memcpy(yt + 8 * h, buf, sizeof(float) * left);
      }
    }
  }
}

}  // namespace

void Int8DotsAvx2(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t*, const int8_t* f, int32_t ldf,
                  int32_t* out, int32_t ldo) {
  for (int32_t t = 0; t < m; t += 2) {
    const int mt = m - t < 2 ? 1 : 2;
    const int8_t* ar[2] = {a + (size_t)t * lda, a + (size_t)(t + mt - 1) * lda};
    for (int32_t c = 0; c < r; c += 4) {
      const int32_t ct = r - c < 4 ? r - c : 4;
      const int8_t* fr[4];
      for (int i = 0; i < 4; ++i) fr[i] = f + (size_t)(c + (i < ct ? i : 0)) * ldf;
      if (mt == 1) DotsTile<1>(ar, fr, k, ct, out + (size_t)t * ldo + c, ldo);
      else DotsTile<2>(ar, fr, k, ct, out + (size_t)t * ldo + c, ldo);
    }
  }
}

void Int8RowsAddAvx2(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t*, const int8_t* f,
                     int32_t ldf, const float* scale, float* y, int32_t ldy) {
  for (int32_t j = 0; j < cols; j += 32) {
    for (int32_t t = 0; t < m; t += 2) {
      const int mt = m - t < 2 ? 1 : 2;
      const int8_t* ar[2] = {a + (size_t)t * lda, a + (size_t)(t + mt - 1) * lda};
      float* yr[2] = {y + (size_t)t * ldy, y + (size_t)(t + mt - 1) * ldy};
      if (mt == 1) RowsTile<1>(ar, scale + t, r, f, ldf, j, cols, yr);
      else RowsTile<2>(ar, scale + t, r, f, ldf, j, cols, yr);
    }
  }
}

}  // namespace w4a8::cpu::kron
