// fp16/bf16 conversions: exhaustive round trip of every fp16 bit pattern, and rounding ties.
#include <cmath>
#include <cstdio>
#include "w4a8/half.h"

int main() {
  using namespace w4a8;
  int failures = 0;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = HalfToFloat((uint16_t)h);
    const uint16_t back = FloatToHalf(f);
    const bool nan = ((h & 0x7c00u) == 0x7c00u) && (h & 0x3ffu);
    if (nan ? !std::isnan(HalfToFloat(back)) : back != h) {
      if (failures++ < 5) std::printf("fp16 0x%04x -> %g -> 0x%04x\n", h, f, back);
    }
  }
  // Ties round to even: 1 + 2^-11 lies halfway between 1 and the next fp16 value.
  if (FloatToHalf(1.0f + std::ldexp(1.0f, -11)) != 0x3c00u) { ++failures; std::puts("tie to even failed"); }
  if (FloatToHalf(65520.0f) != 0x7c00u) { ++failures; std::puts("overflow to inf failed"); }
  if (FloatToHalf(65504.0f) != 0x7bffu) { ++failures; std::puts("max half failed"); }
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = Bf16ToFloat((uint16_t)b);
    if (std::isnan(f)) continue;
    if (FloatToBf16(f) != b) { if (failures++ < 10) std::printf("bf16 0x%04x\n", b); }
  }
  std::printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
