// IEEE fp16 and bfloat16 <-> fp32, bit-exact (round to nearest even), usable from CUDA too.
#pragma once
#include <cstdint>
#include <cstring>
#include <cstddef>

#if defined(__CUDACC__)
#define W4A8_HD __host__ __device__ inline
#else
#define W4A8_HD inline
#endif

namespace w4a8 {

W4A8_HD uint32_t FloatBits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
W4A8_HD float BitsFloat(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

W4A8_HD float HalfToFloat(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return BitsFloat(sign);
    // Subnormal: normalise into an fp32 normal.
    int e = -1;
    do { mant <<= 1; ++e; } while ((mant & 0x400u) == 0);
    return BitsFloat(sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13);
  }
  if (exp == 31) return BitsFloat(sign | 0x7f800000u | mant << 13);
  return BitsFloat(sign | (exp + 112) << 23 | mant << 13);
}

W4A8_HD uint16_t FloatToHalf(float f) {
  uint32_t x = FloatBits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN / Inf
  if (x >= 0x477ff000u) return sign | 0x7c00u;                                 // overflow -> Inf
  if (x < 0x38800000u) {                                                       // fp16 subnormal or zero
    if (x < 0x33000000u) return sign;
    const uint32_t e = x >> 23;
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t half = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return sign | (uint16_t)half;
  }
  uint32_t h = ((x >> 13) - (112u << 10));
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return sign | (uint16_t)h;
}

W4A8_HD float Bf16ToFloat(uint16_t b) { return BitsFloat((uint32_t)b << 16); }

W4A8_HD uint16_t FloatToBf16(float f) {
  uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

void HalfToFloatArray(const uint16_t* src, float* dst, size_t n);
void FloatToHalfArray(const float* src, uint16_t* dst, size_t n);
void Bf16ToFloatArray(const uint16_t* src, float* dst, size_t n);
void FloatToBf16Array(const float* src, uint16_t* dst, size_t n);

}  // namespace w4a8
