// AVX-512 building blocks of a decode step's attention (attention_internal.h): the scores of a kv
// head's query heads against its cached keys, and their weighted sum of the cached values. Twice the
// width of the AVX2 tiles and masked loads for any head size; the scores' sixteen dot products of a
// tile are finished together (Reduce16), not one horizontal sum each.
#include <immintrin.h>

// GCC 12 reports false 'uninitialized' warnings inside its own AVX512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "attention_internal.h"

namespace w4a8::cpu::attention {
namespace {

inline __mmask16 FirstLanes(int32_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

// Lane t of the result is the sum of the 16 lanes of a_t: pairs, then quads within each 128-bit
// chunk, then across the four chunks. (Sixteen values, not an array: GCC 12 then keeps the caller's
// accumulators in registers instead of storing them every iteration.)
inline __m512 Pair(__m512 x, __m512 y) { return _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y)); }
inline __m512 Quad(__m512 b0, __m512 b1) {
  return _mm512_add_ps(_mm512_shuffle_ps(b0, b1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline __m512 Halves(__m512 c0, __m512 c1) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(c0, c1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(c0, c1, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline __m512 Reduce16(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512 a6, __m512 a7, __m512 a8,
                       __m512 a9, __m512 a10, __m512 a11, __m512 a12, __m512 a13, __m512 a14, __m512 a15) {
  const __m512 c0 = Quad(Pair(a0, a1), Pair(a2, a3)), c1 = Quad(Pair(a4, a5), Pair(a6, a7));
  const __m512 c2 = Quad(Pair(a8, a9), Pair(a10, a11)), c3 = Quad(Pair(a12, a13), Pair(a14, a15));
  const __m512 f01 = Halves(c0, c1), f23 = Halves(c2, c3);
  return _mm512_add_ps(_mm512_shuffle_f32x4(f01, f23, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(f01, f23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// R query rows x KK keys (R * KK = 16 accumulators); with kTail only `kk` < KK keys are real (the last
// tile). Each 16-column slice of a key is loaded once for the R rows; the head's last columns are a
// masked load (zeros past hs).
template <int R, int KK, bool kTail>
void ScoreTile(const float* q, int32_t hs, const float* keys, int32_t kk, float* scores, int64_t ld) {
  static_assert(R * KK == 16, "one accumulator per lane of the reduced vector");
  __m512 acc[16];
  for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
  for (int32_t i = 0; i < hs; i += 16) {
    const __mmask16 m = FirstLanes(hs - i);
    __m512 kv[KK];
    for (int k = 0; k < KK; ++k) kv[k] = !kTail || k < kk ? _mm512_maskz_loadu_ps(m, keys + (int64_t)k * hs + i) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + (int64_t)r * hs + i);
      for (int k = 0; k < KK; ++k) acc[r * KK + k] = _mm512_fmadd_ps(qv, kv[k], acc[r * KK + k]);
    }
  }
  alignas(64) float sums[16];
  _mm512_store_ps(sums, Reduce16(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7], acc[8], acc[9], acc[10],
                                  acc[11], acc[12], acc[13], acc[14], acc[15]));
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < (kTail ? kk : KK); ++k) scores[(int64_t)r * ld + k] = sums[r * KK + k];
}

// Rows [0, R) against every key. The keys `kAhead` tiles on are prefetched: in a decode step the cache
// was pushed out of the caches by the layer's weights and comes from DRAM.
template <int R>
void ScoreRows(const float* q, int32_t hs, const float* keys, int64_t cols, float* scores, int64_t ld) {
  constexpr int KK = 16 / R, kAhead = 2;
  const int64_t tile_bytes = (int64_t)KK * hs * (int64_t)sizeof(float);
  int64_t j = 0;
  for (; j + KK <= cols; j += KK) {
    if (j + (kAhead + 1) * KK <= cols) {
      const char* ahead = (const char*)(keys + (j + kAhead * KK) * hs);
      for (int64_t b = 0; b < tile_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    }
    ScoreTile<R, KK, false>(q, hs, keys + j * hs, KK, scores + j, ld);
  }
  if (j < cols) ScoreTile<R, KK, true>(q, hs, keys + j * hs, (int32_t)(cols - j), scores + j, ld);
}

// R rows x NV vectors of 16 columns from c0 (the last vector masked by `last`): each value slice is
// loaded once for the R rows. 4 x 4 is 16 accumulators, 4 value vectors and a broadcast.
template <int R, int NV>
void ContextTile(const float* p, int64_t ldp, const float* values, int64_t cols, int32_t hs, int32_t c0, __mmask16 last,
                 float* out, int64_t ldo) {
  __m512 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_setzero_ps();
  const int64_t row_bytes = (int64_t)hs * (int64_t)sizeof(float);
  for (int64_t j = 0; j < cols; ++j) {
    const float* row = values + j * hs + c0;
    // Four rows ahead, the slice this tile reads (a head of 64 floats is four lines).
    if (j + 4 < cols)
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) _mm_prefetch((const char*)(row + 16 * n) + 4 * row_bytes, _MM_HINT_T0);
    __m512 v[NV];
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) v[n] = n + 1 < NV ? _mm512_loadu_ps(row + 16 * n) : _mm512_maskz_loadu_ps(last, row + 16 * n);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 pr = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_fmadd_ps(pr, v[n], acc[r][n]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) {
      float* dst = out + r * ldo + c0 + 16 * n;
      if (n + 1 < NV) _mm512_storeu_ps(dst, acc[r][n]);
      else _mm512_mask_storeu_ps(dst, last, acc[r][n]);
    }
}

template <int R>
void ContextRows(const float* p, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo) {
  for (int32_t c0 = 0; c0 < hs; c0 += 64) {
    const int32_t width = hs - c0 < 64 ? hs - c0 : 64, nv = (width + 15) / 16;
    const __mmask16 last = FirstLanes(width - 16 * (nv - 1));
    switch (nv) {
      case 1: ContextTile<R, 1>(p, ldp, values, cols, hs, c0, last, out, ldo); break;
      case 2: ContextTile<R, 2>(p, ldp, values, cols, hs, c0, last, out, ldo); break;
      case 3: ContextTile<R, 3>(p, ldp, values, cols, hs, c0, last, out, ldo); break;
      default: ContextTile<R, 4>(p, ldp, values, cols, hs, c0, last, out, ldo); break;
    }
  }
}

}  // namespace

// Tiles of 8 rows x 2 keys (a group of 8 query heads reads each key once), then 4 x 4, 2 x 8, 1 x 16
// for the rows left over.
void ScoresAvx512(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld) {
  int32_t r = 0;
  for (; r + 8 <= rows; r += 8) ScoreRows<8>(q + (int64_t)r * hs, hs, keys, cols, scores + r * ld, ld);
  if (r + 4 <= rows) ScoreRows<4>(q + (int64_t)r * hs, hs, keys, cols, scores + r * ld, ld), r += 4;
  if (r + 2 <= rows) ScoreRows<2>(q + (int64_t)r * hs, hs, keys, cols, scores + r * ld, ld), r += 2;
  if (r < rows) ScoreRows<1>(q + (int64_t)r * hs, hs, keys, cols, scores + r * ld, ld);
}

// Tiles of 4 rows x 64 columns, summed in key order like the scalar twin.
void ContextAvx512(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4) ContextRows<4>(p + r * ldp, ldp, values, cols, hs, out + r * ldo, ldo);
  switch (rows - r) {
    case 3: ContextRows<3>(p + r * ldp, ldp, values, cols, hs, out + r * ldo, ldo); break;
    case 2: ContextRows<2>(p + r * ldp, ldp, values, cols, hs, out + r * ldo, ldo); break;
    case 1: ContextRows<1>(p + r * ldp, ldp, values, cols, hs, out + r * ldo, ldo); break;
    default: break;
  }
}

}  // namespace w4a8::cpu::attention
