// One group's parameters and the per-element code mapping: the single definition of the weight
// numerics (see quant.h) that the reference, the fast RTN, AWQ and GPTQ all call.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "w4a8/formats.h"
#include "w4a8/quant.h"

namespace w4a8::quant {

struct GroupParams {
  float scale = 0;
  int32_t zero_point = 0;  // int4: asym 0..15, sym 8; fp4: 0 (unused)
};

// Smallest power of two >= s (s > 0, finite).
inline float RoundUpPow2(float s) {
  int e = 0;
  const float m = std::frexp(s, &e);  // s = m * 2^e, m in [0.5, 1)
  return m == 0.5f ? s : std::ldexp(1.0f, e);
}

// Parameters from a group's min and max (over its valid elements) and the clip ratio r.
inline GroupParams ParamsFromRange(float lo_in, float hi_in, const WeightQuantConfig& cfg, float r) {
  GroupParams p;
  if (cfg.format == WeightFormat::kInt4 && !cfg.symmetric) {
    const float lo = std::min(lo_in, 0.0f) * r, hi = std::max(hi_in, 0.0f) * r;
    float scale = (hi - lo) / 15.0f;
    if (!(scale > 0)) return p;  // all-zero group: scale 0, zero point 0, codes 0
    if (cfg.pow2_scales) scale = RoundUpPow2(scale);
    p.scale = scale;
    p.zero_point = (int32_t)std::min(15.0f, std::max(0.0f, std::nearbyint(-lo / scale)));
    return p;
  }
  const float absmax = std::max(std::fabs(lo_in), std::fabs(hi_in)) * r;
  const float qmax = cfg.format == WeightFormat::kFp4E2M1 ? 6.0f : 7.0f;
  p.zero_point = cfg.format == WeightFormat::kInt4 ? kInt4DefaultZeroPoint : 0;
  float scale = absmax / qmax;
  if (!(scale > 0)) return p;
  if (cfg.pow2_scales) scale = RoundUpPow2(scale);
  p.scale = scale;
  return p;
}

// Nearest E2M1 magnitude index (0..7 -> 0, .5, 1, 1.5, 2, 3, 4, 6) of v >= 0; ties go to the even
// mantissa (the even index), values past 6 saturate.
inline int Fp4MagnitudeCode(float v) {
  if (v <= 0.25f) return 0;
  if (v < 0.75f) return 1;
  if (v <= 1.25f) return 2;
  if (v < 1.75f) return 3;
  if (v <= 2.5f) return 4;
  if (v < 3.5f) return 5;
  if (v <= 5.0f) return 6;
  return 7;
}

inline int QuantizeCode(float w, const GroupParams& p, WeightFormat format) {
  if (format == WeightFormat::kFp4E2M1) {
    if (p.scale == 0) return 0;
    const float x = w / p.scale;
    const int mag = Fp4MagnitudeCode(std::fabs(x));
    return (x < 0 && mag != 0) ? (mag | 8) : mag;
  }
  if (p.scale == 0) return p.zero_point;
  const float q = std::nearbyint(w / p.scale) + (float)p.zero_point;
  return (int)std::min(15.0f, std::max(0.0f, q));
}

inline float DequantizeCode(int code, const GroupParams& p, WeightFormat format) {
  if (format == WeightFormat::kFp4E2M1) return Fp4E2M1Value(code) * p.scale;
  return (float)(code - p.zero_point) * p.scale;
}

inline float QuantDequant(float w, const GroupParams& p, WeightFormat format) {
  return DequantizeCode(QuantizeCode(w, p, format), p, format);
}

// MSE clip search for one group (GPTQ's `mse` option; AutoAWQ's clip search in weight space):
// among the clip ratios r_i = cfg.clip_ratio * (1 - i (1 - clip_min) / (grid - 1)), i = 0..grid-1,
// the parameters whose quantize-dequantize error sum_e weight_e (v_e - Q(v_e))^2 over the group's
// `count` values (stride apart) is least; weight null = 1, ties keep the larger ratio. r_0 is the
// unsearched ratio, so the result is never worse than no search on the values it was chosen on.
// Scalar on purpose: it runs once per group, off the GEMM path.
inline GroupParams MseClipParams(const float* v, int64_t stride, int32_t count, const float* weight,
                                 const WeightQuantConfig& cfg, int32_t grid, float clip_min, float* chosen_ratio = nullptr) {
  float lo = v[0], hi = v[0];
  for (int32_t e = 1; e < count; ++e) {
    lo = std::min(lo, v[e * stride]);
    hi = std::max(hi, v[e * stride]);
  }
  GroupParams best = ParamsFromRange(lo, hi, cfg, cfg.clip_ratio);
  if (chosen_ratio) *chosen_ratio = cfg.clip_ratio;
  if (grid <= 1) return best;
  auto error = [&](const GroupParams& p) {
    double sum = 0;
    for (int32_t e = 0; e < count; ++e) {
      const double d = (double)v[e * stride] - QuantDequant(v[e * stride], p, cfg.format);
      sum += (weight ? (double)weight[e] : 1.0) * d * d;
    }
    return sum;
  };
  double best_error = error(best);
  for (int32_t i = 1; i < grid; ++i) {
    const float r = cfg.clip_ratio * (1.0f - (float)i * (1.0f - clip_min) / (float)(grid - 1));
    const GroupParams p = ParamsFromRange(lo, hi, cfg, r);
    const double e = error(p);
    if (e < best_error) {
      best_error = e;
      best = p;
      if (chosen_ratio) *chosen_ratio = r;
    }
  }
  return best;
}

// Quantization group b (g elements along K) covers canonical layout blocks [*lb0, *lb1) of size lg:
// one block when g == lg, every block of the row for per-channel quantization.
inline void LayoutBlocksOf(int32_t b, int32_t g, int32_t k, int32_t lg, int32_t* lb0, int32_t* lb1) {
  *lb0 = (int32_t)(((int64_t)b * g) / lg);
  *lb1 = (int32_t)((std::min<int64_t>(k, (int64_t)(b + 1) * g) + lg - 1) / lg);
}

inline void SetNibble(uint8_t* bytes, size_t index, int value) {
  uint8_t& b = bytes[index / 2];
  b = (index & 1) ? (uint8_t)((b & 0x0f) | (value << 4)) : (uint8_t)((b & 0xf0) | (value & 0x0f));
}

}  // namespace w4a8::quant
