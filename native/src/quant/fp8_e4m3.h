// FP8 E4M3FN (1 sign, 4 exponent bits with bias 7, 3 mantissa bits, no infinities, NaN = S.1111.111,
// max 448): the format of ONNX FLOAT8E4M3FN. Conversion rounds to nearest even and, like ONNX Cast
// with saturate=1, maps finite overflow and +-Inf to +-448.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace w4a8::quant {

inline uint8_t FloatToE4M3(float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  const uint8_t sign = (uint8_t)((bits >> 24) & 0x80);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7f;   // NaN
  if (abs == 0x7f800000u) return sign | 0x7e;  // saturate
  if (abs < 0x3c800000u) {                     // below 2^-6: subnormal grid of 2^-9
    float a;
    memcpy(&a, &abs, 4);
    const int m = (int)std::nearbyint(a * 512.0f);  // exact scaling, RNE; 8 becomes the min normal
    return sign | (uint8_t)m;
  }
  // Keep 3 mantissa bits with round-half-even on the fp32 pattern; carries ripple into the exponent.
  const uint32_t rounded = (abs + 0x7ffffu + ((abs >> 20) & 1u)) >> 20;
  const uint32_t code = rounded - (120u << 3);
  return sign | (uint8_t)(code > 0x7eu ? 0x7eu : code);
}

inline float E4M3ToFloat(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  float v;
  if (e == 15 && m == 7) v = NAN;
  else if (e == 0) v = std::ldexp((float)m, -9);
  else v = std::ldexp(1.0f + m / 8.0f, e - 7);
  return (c & 0x80) ? -v : v;
}

}  // namespace w4a8::quant
