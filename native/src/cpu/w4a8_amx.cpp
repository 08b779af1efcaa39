// AMX-INT8 kernel: the tile driver of amx_tiles.h on the hardware tile instructions. Tiles with fewer
// than 16 token rows go to the AVX512-VNNI kernel (one A tile would be mostly padding).
#include <immintrin.h>

// GCC 12 reports false 'maybe uninitialized' warnings inside its own AVX512 intrinsic headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "cpu/amx_tiles.h"

namespace w4a8::cpu::w4a8k {
namespace {

// GCC's tile intrinsics paste the tile number into the asm text, so each (tile, op) pair is spelled
// out with a literal number instead of a template parameter. GCC 12's _tile_loadconfig tells the
// compiler it reads only 8 bytes of the config, and _tile_loadd that it reads no memory at all, so
// stores to the config or to the unpacked weights could legally be sunk past them: the wrappers below
// declare the whole 64-byte config as read and clobber memory on every tile load.
struct HardwareTiles {
  static void Configure(const AmxTileConfig* cfg) { __asm__ volatile("ldtilecfg %0" ::"m"(*cfg) : "memory"); }
  template <int T>
  static void Zero();
  template <int T>
  static void Load(const void* p, size_t stride);
  template <int C, int A, int B>
  static void DotSS();
  template <int T>
  static void Store(void* p, size_t stride);
  static void Release() { _tile_release(); }
};

#define W4A8_AMX_C_TILE(T)                                                                  \
  template <>                                                                               \
  inline void HardwareTiles::Zero<T>() { _tile_zero(T); }                                   \
  template <>                                                                               \
  inline void HardwareTiles::Store<T>(void* p, size_t stride) { _tile_stored(T, p, stride); }
#define W4A8_AMX_LOAD(T)                                                                            \
  template <>                                                                                       \
  inline void HardwareTiles::Load<T>(const void* p, size_t stride) {                                \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #T ::"r"(p), "r"((long)stride) : "memory");       \
  }
#define W4A8_AMX_DOT(C, A, B) \
  template <>                 \
  inline void HardwareTiles::DotSS<C, A, B>() { _tile_dpbssd(C, A, B); }

// Literal numbers must match kAmxC00.. kAmxB1 in amx_tiles.h (checked below).
W4A8_AMX_C_TILE(0)
W4A8_AMX_C_TILE(1)
W4A8_AMX_C_TILE(2)
W4A8_AMX_C_TILE(3)
W4A8_AMX_LOAD(4)
W4A8_AMX_LOAD(5)
W4A8_AMX_LOAD(6)
W4A8_AMX_LOAD(7)
W4A8_AMX_DOT(0, 4, 6)
W4A8_AMX_DOT(1, 4, 7)
W4A8_AMX_DOT(2, 5, 6)
W4A8_AMX_DOT(3, 5, 7)
static_assert(kAmxC00 == 0 && kAmxC01 == 1 && kAmxC10 == 2 && kAmxC11 == 3 && kAmxA0 == 4 && kAmxA1 == 5 &&
                  kAmxB0 == 6 && kAmxB1 == 7,
              "tile numbers above are spelled out literally");

}  // namespace

void TileAmx(const CpuPackedView& v, const QuantizedActs& a, const float* bias, float* y, const Tile& t) {
  if (t.m1 - t.m0 < 16 || a.m_rows < t.m0 + (t.m1 - t.m0 + kAmxRows - 1) / kAmxRows * kAmxRows) {
    TileAvx512Vnni(v, a, bias, y, t);
    return;
  }
  AmxTileDriver<HardwareTiles, AmxAvx512Helpers>(v, a, bias, y, t);
}

}  // namespace w4a8::cpu::w4a8k
