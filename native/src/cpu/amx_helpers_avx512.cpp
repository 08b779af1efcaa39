// AVX512 versions of the AMX driver's non-tile work (amx_tiles.h): unpacking a panel into AMX B-tile
// order and folding a group's int32 tile results into fp32 accumulators. They run on any AVX512 CPU,
// so test_cpu_gemm_amx_emulated checks them against the scalar versions even where AMX is absent.
#include <immintrin.h>

// GCC 12 reports false 'maybe uninitialized' warnings inside its own AVX512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "cpu/amx_tiles.h"

namespace w4a8::cpu::w4a8k {

void UnpackPanelForAmxAvx512(const CpuPackedView& v, int32_t p, int8_t* out) {
  const int32_t chunks_per_group = v.group_size / kCpuChunkK;
  const uint8_t* src = v.codes + (size_t)p * (v.k_padded / kCpuChunkK) * kCpuChunkBytes;
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const bool fp4 = v.format == WeightFormat::kFp4E2M1;
  alignas(16) int8_t table[16];
  for (int c = 0; c < 16; ++c) table[c] = (int8_t)CpuWeightU8(v.format, c);
  const __m512i lut = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i*)table));
  for (int32_t g = 0; g < v.blocks_per_row; ++g) {
    // the 16 channel zeros, each repeated over its 4 bytes (one dword per channel, as in the chunk)
    const __m512i zero32 = _mm512_cvtepu8_epi32(
        _mm_loadu_si128((const __m128i*)(v.zeros + ((size_t)p * v.blocks_per_row + g) * kCpuPanelN)));
    const __m512i zero = _mm512_mullo_epi32(zero32, _mm512_set1_epi32(0x01010101));
    for (int32_t c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
      const __m512i raw = _mm512_load_si512((const void*)(src + (size_t)c * kCpuChunkBytes));
      __m512i lo = _mm512_and_si512(raw, nibble);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
      if (fp4) {
        lo = _mm512_shuffle_epi8(lut, lo);
        hi = _mm512_shuffle_epi8(lut, hi);
      }
      _mm512_storeu_si512((void*)(out + (size_t)(2 * c) * 64), _mm512_sub_epi8(lo, zero));
      _mm512_storeu_si512((void*)(out + (size_t)(2 * c + 1) * 64), _mm512_sub_epi8(hi, zero));
    }
  }
}

void AmxFoldGroupAvx512(const int32_t (*c_buf)[16][16], int32_t rows, int32_t panels, const float* x_scale,
                        size_t x_stride, const float* const w_scale[2], float (*facc)[2 * kCpuPanelN]) {
  for (int32_t j = 0; j < panels; ++j) {
    const __m512 ws = _mm512_loadu_ps(w_scale[j]);
    for (int32_t r = 0; r < rows; ++r) {
      const __m512i isum = _mm512_loadu_si512((const void*)c_buf[(r / 16) * 2 + j][r % 16]);
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(x_scale[(size_t)r * x_stride]), ws);
      float* acc = facc[r] + j * kCpuPanelN;
      _mm512_storeu_ps(acc, _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, _mm512_loadu_ps(acc)));
    }
  }
}

}  // namespace w4a8::cpu::w4a8k
