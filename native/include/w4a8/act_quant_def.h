// Per-token activation quantization, int8 and FP8 E4M3: the one definition. The CPU kernels (scalar
// and SIMD, cpu/act_quant*.cpp), the CUDA kernels (cuda/act_quant.cu), the quantizer's fake quant
// (quant/act_quant.cpp) and the simulated ONNX export (lib/export/act_quant_graph.ts, the same steps
// as standard ONNX ops) all compute, per row (or per K-group of a row):
//   amax  = max |x|
//   inv   = qmax / amax in fp32 (qmax 127 or 448), capped at FLT_MAX; inv = 0 when amax == 0
//           (the cap only acts when amax is so small, below about 2^-121, that qmax / amax overflows:
//           inf would turn the row's zeros into 0 * inf = NaN; capped, such a row quantizes to zeros)
//   int8: q = clamp(round_half_even(x * inv), -127, 127)      (symmetric: -128 is never produced)
//   fp8:  q = E4M3FN(x * inv), round to nearest even, saturating to +-448 (ONNX Cast saturate=1)
//   scale = amax / qmax, and the dequantized value y = q * scale
// Multiplying by the reciprocal, not dividing by the scale, is the kernels' choice (one division per
// row); x / scale differs from x * inv in about 1 of 10^6 values, so every site must use these
// functions. Everything here is __host__ __device__ (W4A8_HD) so that host tests check the device code.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "w4a8/formats.h"

namespace w4a8 {

constexpr float kInt8Max = 127.0f;
constexpr float kE4M3Max = 448.0f;  // largest finite FP8 E4M3FN

// ---- FP8 E4M3 (the "FN" variant: no infinities, 0x7f/0xff NaN, max 448) ---------------------
// The one codec of the project (ONNX FLOAT8E4M3FN).

W4A8_HD float E4M3ToFloat(uint8_t v) {
  const uint32_t sign = (uint32_t)(v & 0x80) << 24;
  const uint32_t exp = (v >> 3) & 0xf;
  const uint32_t mant = v & 7;
  uint32_t bits;
  if (exp == 15 && mant == 7) {
    bits = sign | 0x7fc00000u;
  } else if (exp == 0) {
    // Subnormal: mant * 2^-9, exact in fp32.
    float f = (float)mant * (1.0f / 512.0f);
    memcpy(&bits, &f, 4);
    bits |= sign;
  } else {
    bits = sign | (exp + 120) << 23 | mant << 20;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

// fp32 -> E4M3 with round to nearest even, saturating to +-448 (also for +-inf); NaN -> 0x7f.
W4A8_HD uint8_t FloatToE4M3(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint8_t sign = (uint8_t)((x >> 24) & 0x80);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7f;
  if (x >= 0x43e00000u) return sign | 0x7e;  // >= 448
  if (x < 0x3c800000u) {                     // below 2^-6: subnormal E4M3, a multiple of 2^-9
    // |f| * 2^9 is exact; adding 1.5 * 2^23 rounds it to an integer, ties to even, in fp32.
    float a;
    memcpy(&a, &x, 4);
    const float r = a * 512.0f + 12582912.0f;
    uint32_t rb;
    memcpy(&rb, &r, 4);
    return sign | (uint8_t)(rb - 0x4b400000u);  // 0..8; 8 is the smallest normal 0x08, as wanted
  }
  const uint32_t mant = x & 0x7fffffu;
  uint32_t r = (((x >> 23) - 120) << 3) | (mant >> 20);
  const uint32_t rest = mant & 0xfffffu;
  if (rest > 0x80000u || (rest == 0x80000u && (r & 1))) ++r;  // a carry into the exponent is right
  return sign | (uint8_t)(r > 0x7e ? 0x7e : r);
}

// ---- per-token quantization ------------------------------------------------------------------

W4A8_HD float RoundHalfEven(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return std::nearbyint(v);  // the default rounding mode: to nearest, ties to even
#endif
}

// One step of the running max |x| (start from 0). Written as the x86 maxps select (amax > |x| ?
// amax : |x|), which the SIMD variants use.
W4A8_HD float AbsMaxStep(float amax, float x) {
#if defined(__CUDA_ARCH__)
  const float a = fabsf(x);
#else
  const float a = std::fabs(x);
#endif
  return amax > a ? amax : a;
}

constexpr float kMaxInverse = 3.40282347e38f;  // FLT_MAX

// scale = amax / qmax and inverse = qmax / amax capped at FLT_MAX, each one fp32 division; amax == 0
// (or NaN) gives inverse 0, so the row quantizes to zeros.
struct TokenScale {
  float scale;
  float inverse;
};
W4A8_HD TokenScale MakeTokenScale(float amax, float qmax) {
  const float inverse = qmax / amax;
  return {amax / qmax, amax > 0.0f ? (inverse < kMaxInverse ? inverse : kMaxInverse) : 0.0f};
}

// The int8 code as a float: clamp, then round (the same as round then clamp, the bounds being
// integers). The clamp is written as the x86 maxps/minps selects (NaN -> -127) so that the scalar and
// SIMD variants agree on every input; the float keeps the sign of a zero for the fake quantizer.
W4A8_HD float QuantizeInt8Value(float x, float inverse) {
  float v = x * inverse;
  v = v > -kInt8Max ? v : -kInt8Max;
  v = v < kInt8Max ? v : kInt8Max;
  return RoundHalfEven(v);
}
W4A8_HD int8_t QuantizeInt8(float x, float inverse) { return (int8_t)QuantizeInt8Value(x, inverse); }

// The FP8 E4M3FN code of x * inverse.
W4A8_HD uint8_t QuantizeE4M3(float x, float inverse) { return FloatToE4M3(x * inverse); }

// Quantize-dequantize of one value (the fake quantizer and the simulated export): q * scale.
W4A8_HD float FakeQuantInt8(float x, const TokenScale& s) { return QuantizeInt8Value(x, s.inverse) * s.scale; }
W4A8_HD float FakeQuantE4M3(float x, const TokenScale& s) { return E4M3ToFloat(QuantizeE4M3(x, s.inverse)) * s.scale; }

}  // namespace w4a8
