// AVX2 + FMA building blocks of CachedAttention (attention_internal.h).
#include <immintrin.h>

#include <cmath>

#include "attention_internal.h"

namespace w4a8::cpu::attention {
namespace {

// exp(x) by range reduction to [-ln2/2, ln2/2] and a degree-5 polynomial (the Cephes expf
// coefficients); x below -87.3 (and -inf) gives 0, above 88.38 the largest finite result.
inline __m256 Exp(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365f)), _mm256_set1_ps(88.3762626647949f));
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Lane i of the result is the sum of the lanes of a[i]: eight dot products finished at once.
inline __m256 Sum8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// The tail of a row through the vector path (a partial load would need masks; a copy is simpler).
template <typename F>
void Tail(int64_t n, const F& f) {
  if (n <= 0) return;
  alignas(32) float buf[3][8] = {};
  f(buf, n);
}

}  // namespace

float ExpShiftSumAvx2(float* x, int32_t n, float shift) {
  const __m256 vs = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = HorizontalSum(acc);
  Tail(n - i, [&](float (*buf)[8], int64_t rest) {
    for (int64_t j = 0; j < 8; ++j) buf[0][j] = j < rest ? x[i + j] : -INFINITY;
    _mm256_store_ps(buf[1], Exp(_mm256_sub_ps(_mm256_load_ps(buf[0]), vs)));
    for (int64_t j = 0; j < rest; ++j) {
      x[i + j] = buf[1][j];
      sum += buf[1][j];
    }
  });
  return sum;
}

void SiluMulAvx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  const auto f = [&](__m256 g, __m256 u) { return _mm256_div_ps(_mm256_mul_ps(g, u), _mm256_add_ps(one, Exp(_mm256_sub_ps(zero, g)))); };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  Tail(n - i, [&](float (*buf)[8], int64_t rest) {
    for (int64_t j = 0; j < rest; ++j) {
      buf[0][j] = gate[i + j];
      buf[1][j] = up[i + j];
    }
    _mm256_store_ps(buf[2], f(_mm256_load_ps(buf[0]), _mm256_load_ps(buf[1])));
    for (int64_t j = 0; j < rest; ++j) out[i + j] = buf[2][j];
  });
}

float DotAvx2(const float* a, const float* b, int32_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Tiles of 4 query rows x 2 keys: each key chunk is loaded once for four rows, and the tile's eight
// sums are reduced together (Sum8) instead of one horizontal sum per dot. 8 accumulators + 2 keys + 1 query
// fit AVX2's 16 registers. Rows and keys left over, and head sizes not a multiple of 8, finish one dot at a time.
void ScoresAvx2(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores, int64_t ld) {
  constexpr int kRows = 4, kKeys = 2;
  const int32_t h8 = hs & ~7;
  int32_t r = 0;
  for (; r + kRows <= rows; r += kRows) {
    const float* qr = q + (int64_t)r * hs;
    int64_t j = 0;
    for (; j + kKeys <= cols; j += kKeys) {
      const float* k0 = keys + j * hs;
      const float* k1 = k0 + hs;
      // Four tiles ahead: in a decode step the cache comes from DRAM (the layer's weights pushed it out).
      if (j + 5 * kKeys <= cols)
        for (int32_t b = 0; b < kKeys * hs; b += 16) _mm_prefetch((const char*)(k0 + 4 * kKeys * hs + b), _MM_HINT_T0);
      __m256 acc[kRows * kKeys];
      for (int t = 0; t < kRows * kKeys; ++t) acc[t] = _mm256_setzero_ps();
      for (int32_t i = 0; i < h8; i += 8) {
        const __m256 ka = _mm256_loadu_ps(k0 + i), kb = _mm256_loadu_ps(k1 + i);
        for (int rr = 0; rr < kRows; ++rr) {
          const __m256 qv = _mm256_loadu_ps(qr + (int64_t)rr * hs + i);
          acc[kKeys * rr] = _mm256_fmadd_ps(qv, ka, acc[kKeys * rr]);
          acc[kKeys * rr + 1] = _mm256_fmadd_ps(qv, kb, acc[kKeys * rr + 1]);
        }
      }
      alignas(32) float sums[kRows * kKeys];
      _mm256_store_ps(sums, Sum8(acc));
      for (int rr = 0; rr < kRows; ++rr)
        for (int kk = 0; kk < kKeys; ++kk) {
          float v = sums[kKeys * rr + kk];
          for (int32_t i = h8; i < hs; ++i) v += qr[(int64_t)rr * hs + i] * keys[(j + kk) * hs + i];
          scores[(int64_t)(r + rr) * ld + j + kk] = v;
        }
    }
    for (; j < cols; ++j)
      for (int rr = 0; rr < kRows; ++rr) scores[(int64_t)(r + rr) * ld + j] = DotAvx2(qr + (int64_t)rr * hs, keys + j * hs, hs);
  }
  for (; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) scores[(int64_t)r * ld + j] = DotAvx2(q + (int64_t)r * hs, keys + j * hs, hs);
}

namespace {
// Columns [c0, c0 + 8 NV) of R rows of the context: NV vectors of each value row serve all R rows.
template <int R, int NV>
void ContextBlock(const float* p, int64_t ldp, const float* values, int64_t cols, int32_t hs, int32_t c0, float* out, int64_t ldo) {
  __m256 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) acc[r][n] = _mm256_setzero_ps();
  for (int64_t j = 0; j < cols; ++j) {
    // Four rows ahead, the line this block reads (the cache comes from DRAM in a decode step).
    if (j + 4 < cols) _mm_prefetch((const char*)(values + (j + 4) * hs + c0), _MM_HINT_T0);
    __m256 v[NV];
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) v[n] = _mm256_loadu_ps(values + j * hs + c0 + 8 * n);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 pr = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) acc[r][n] = _mm256_fmadd_ps(pr, v[n], acc[r][n]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) _mm256_storeu_ps(out + r * ldo + c0 + 8 * n, acc[r][n]);
}

template <int NV>
void ContextColumns(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, int32_t c0, float* out, int64_t ldo) {
  int32_t r = 0;
  for (; r + 4 <= rows; r += 4) ContextBlock<4, NV>(p + r * ldp, ldp, values, cols, hs, c0, out + r * ldo, ldo);
  for (; r < rows; ++r) ContextBlock<1, NV>(p + r * ldp, ldp, values, cols, hs, c0, out + r * ldo, ldo);
}
}  // namespace

// Tiles of 4 rows x 16 columns (8 accumulators + 2 value vectors + 1 broadcast); head sizes not a multiple
// of 8 finish their last columns one at a time, in the same key order.
void ContextAvx2(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs, float* out, int64_t ldo) {
  int32_t c = 0;
  for (; c + 16 <= hs; c += 16) ContextColumns<2>(p, rows, ldp, values, cols, hs, c, out, ldo);
  for (; c + 8 <= hs; c += 8) ContextColumns<1>(p, rows, ldp, values, cols, hs, c, out, ldo);
  for (; c < hs; ++c)
    for (int32_t r = 0; r < rows; ++r) {
      float v = 0.0f;
      for (int64_t j = 0; j < cols; ++j) v += p[r * ldp + j] * values[j * hs + c];
      out[r * ldo + c] = v;
    }
}

void AxpyAvx2(float* y, float s, const float* x, int32_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += s * x[i];
}

}  // namespace w4a8::cpu::attention
