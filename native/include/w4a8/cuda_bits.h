// Bit-level helpers of the CUDA kernels, usable on the host too, so that every conversion the
// kernels do in registers is unit-tested on the CPU (native/tests/test_cuda_bits.cpp) and compared
// with the device's own intrinsics on the GPU (native/tests/cuda_test_bits.cu).
//
// The packed weight word ("CUDA prepacked layouts" in formats.h) holds the 8 codes one lane needs
// for one m16n8k32 B fragment: nibble 2*i is byte i of fragment register b0 (k = 4*t + i) and nibble
// 2*i+1 is byte i of b1 (k = 16 + 4*t + i), t = lane % 4. So a mask gives b0 and a shift plus mask b1.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "w4a8/act_quant_def.h"
#include "w4a8/formats.h"

namespace w4a8 {

// PTX prmt.b32 in its default mode (__byte_perm): byte i of the result is byte (s & 7) of the 8-byte
// value {hi:lo}, s = selector nibble i; when s & 8, the sign bit of that byte is replicated instead.
W4A8_HD uint32_t BytePerm(uint32_t lo, uint32_t hi, uint32_t selector) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(lo), "r"(hi), "r"(selector));
  return r;
#else
  const uint64_t both = (uint64_t)hi << 32 | lo;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    const uint32_t s = (selector >> (4 * i)) & 0xf;
    uint32_t byte = (uint32_t)(both >> (8 * (s & 7))) & 0xff;
    if (s & 8) byte = (byte & 0x80) ? 0xff : 0x00;
    r |= byte << (8 * i);
  }
  return r;
#endif
}

// ---- packed int4 word -> two int8x4 fragment registers -------------------------------------

// k offset (0..31 inside the k32 MMA step) of nibble `nibble` (0..7) of the word held by a lane
// whose index within its quad is t (0..3).
W4A8_HD int CudaWordNibbleK(int nibble, int t) { return (nibble & 1) * 16 + 4 * t + (nibble >> 1); }

struct Int8x4Pair {
  uint32_t lo;  // fragment register b0: 4 int8, k = 4t + 0..3
  uint32_t hi;  // fragment register b1: 4 int8, k = 16 + 4t + 0..3
};

// Subtracts a zero point from four unsigned nibble values held one per byte (0..15), giving the
// int8 values q - zp (-15..15) with no carry between bytes: 0x80 + q - zp stays in 113..143, and
// flipping bit 7 turns that excess-128 byte into two's complement.
W4A8_HD uint32_t SubZeroPointBytes(uint32_t nibble_bytes, uint32_t zero_point) {
  return ((nibble_bytes | 0x80808080u) - zero_point * 0x01010101u) ^ 0x80808080u;
}

// int4 word -> (b0, b1) with the zero point applied: exactly the integer weights q - zp.
W4A8_HD Int8x4Pair UnpackInt4Word(uint32_t word, uint32_t zero_point) {
  return {SubZeroPointBytes(word & 0x0f0f0f0fu, zero_point), SubZeroPointBytes((word >> 4) & 0x0f0f0f0fu, zero_point)};
}

// Four FP4 E2M1 codes, one per byte (0..15), -> four int8 2*value (-12..12) by two 8-entry
// byte lookups (prmt takes 3-bit indices; positive and negative halves apart) and a sign select.
W4A8_HD uint32_t Fp4BytesToInt8x4Times2(uint32_t code_bytes) {
  // Nibbles of the selector in the order bytes 0, 2, 1, 3 (what one shift-or gives); undone below.
  const uint32_t sel = (code_bytes | (code_bytes >> 12)) & 0x7777u;
  const uint32_t pos = BytePerm(0x03020100u, 0x0c080604u, sel);  // 0 1 2 3 | 4 6 8 12
  const uint32_t neg = BytePerm(0xfdfeff00u, 0xf4f8fafcu, sel);  // 0 -1 -2 -3 | -4 -6 -8 -12
  const uint32_t sign = ((code_bytes >> 3) & 0x01010101u) * 0xffu;
  const uint32_t sign_perm = BytePerm(sign, 0, 0x3120u);
  return BytePerm((pos & ~sign_perm) | (neg & sign_perm), 0, 0x3120u);
}

// fp4 word -> (b0, b1) as int8 2*value; the kernels halve the scale (done in the prepack).
W4A8_HD Int8x4Pair UnpackFp4Word(uint32_t word) {
  return {Fp4BytesToInt8x4Times2(word & 0x0f0f0f0fu), Fp4BytesToInt8x4Times2((word >> 4) & 0x0f0f0f0fu)};
}

// Byte i of an int8x4 register as an exact float: the excess-128 byte is placed under the exponent of
// 2^23 (one prmt) and the bias removed by one subtraction.
W4A8_HD float Int8x4ByteToFloat(uint32_t int8x4, int i) {
  const uint32_t biased = int8x4 ^ 0x80808080u;
  const uint32_t bits = BytePerm(biased, 0x4b000000u, 0x7540u | (uint32_t)i);
  float f;
  memcpy(&f, &bits, 4);
  return f - 8388736.0f;  // 2^23 + 128
}

// int32 -> fp32, exact for |v| < 2^22, with two full-rate ops instead of the quarter-rate I2F: v is
// added under the exponent of 1.5 * 2^23 and the offset subtracted. A K-group's int32 sum stays far
// inside (|sum| <= group_size * 127 * 15 < 2^22 for group sizes up to 2048).
constexpr int32_t kSmallIntToFloatLimit = 1 << 22;
W4A8_HD float SmallIntToFloat(int32_t v) {
  const uint32_t bits = 0x4b400000u + (uint32_t)v;
  float f;
  memcpy(&f, &bits, 4);
  return f - 12582912.0f;
}

// ---- W4A8 GEMM tile geometry (gemm_w4a8.cu; emulated on the CPU by test_cuda_gemm_emulation) ------

// Shared-memory A tile: 64-byte rows (k 0..63 of a stage), 16-byte chunk c of row r stored at chunk
// c ^ ((r / 2) % 4), so that the 8 rows an ldmatrix phase reads land in 8 distinct bank groups.
W4A8_HD int GemmASharedOffset(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }
// ldmatrix.x4 for the A fragment of k32 step s (0, 1) of a 16-row slab: lanes 0-7 address rows 0-7
// at k 0-15, lanes 8-15 rows 8-15 at k 0-15, lanes 16-23 rows 0-7 at k 16-31, lanes 24-31 rows 8-15.
W4A8_HD int LdMatrixRowOfLane(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
W4A8_HD int LdMatrixChunkOfLane(int lane, int s) { return s * 2 + (lane >> 4); }
// Shared-memory B stage (the packed layout of one 128-channel tile, 2 k32 steps): the 16 bytes of
// lane `lane` of quad `quad` at step s.
W4A8_HD int GemmBSharedOffset(int s, int quad, int lane) { return s * 2048 + (quad * 32 + lane) * 16; }
// Accumulator r (0..3) of an m16n8 MMA held by `lane`: its row in the 16 and column in the 8.
W4A8_HD int MmaAccRow(int lane, int r) { return (lane >> 2) + (r >> 1) * 8; }
W4A8_HD int MmaAccCol(int lane, int r) { return 2 * (lane & 3) + (r & 1); }
// K-group bookkeeping of one split [k_begin, k_end) (group_size >= 32): scales and zero points are
// (re)loaded where a group or the split starts, int32 sums flushed where a group or the split ends.
W4A8_HD bool GemmGroupStarts(int kglob, int group_size, int k_begin) {
  return (kglob & (group_size - 1)) == 0 || kglob == k_begin;
}
W4A8_HD bool GemmGroupEnds(int kglob, int group_size, int k_end) {
  return ((kglob + kCudaMmaK) & (group_size - 1)) == 0 || kglob + kCudaMmaK == k_end;
}

// Launch shape of the W4A8 GEMM: block rows (16, 64 or 128) and the number of K splits, from m, the
// packed shape and the multiprocessor count. Split K when the output tiles alone would leave SMs idle
// (decode-sized m): about 4 blocks per SM, at least 2 k-tiles (128 k) per split, and partial sums
// (splits * m * n * 4 bytes, written and read once) at most a quarter of the weight bytes (n * k / 2):
// splits <= k / (32 m).
struct GemmLaunchShape {
  int32_t block_rows, splits, tiles_per_split;
};
W4A8_HD GemmLaunchShape W4A8GemmLaunchShape(int32_t m, const CudaPackedView& v, int32_t sms) {
  GemmLaunchShape s{16, 1, 0};
  const int64_t n_tiles = v.n_padded / kCudaTileN;
  if (m > 16) s.block_rows = n_tiles * ((m + 127) / 128) >= sms ? 128 : 64;
  const int64_t blocks = n_tiles * ((m + s.block_rows - 1) / s.block_rows);
  const int32_t k_tiles = v.k_padded / kCudaTileK;
  const int64_t want = (4 * (int64_t)sms + blocks - 1) / blocks;
  int32_t most = k_tiles / 2 < v.k / (32 * m) ? k_tiles / 2 : v.k / (32 * m);
  if (most < 1) most = 1;
  const int32_t splits = (int32_t)(want < most ? want : most);
  s.tiles_per_split = (k_tiles + splits - 1) / splits;
  s.splits = (k_tiles + s.tiles_per_split - 1) / s.tiles_per_split;
  return s;
}

// ---- FP4 E2M1 -> FP8 E4M3 (the codec itself is in act_quant_def.h) -------------------------------

// FP4 E2M1 code -> the E4M3 byte of the same value (exact: every E2M1 value is an E4M3 value).
W4A8_HD uint8_t Fp4E2M1ToE4M3(int code) {
  const uint8_t sign = (uint8_t)((code & 8) << 4);
  const int e = (code >> 1) & 3, m = code & 1;
  if (e == 0) return sign | (m ? 0x30 : 0x00);  // 0 or 0.5 = 2^-1
  return sign | (uint8_t)((e + 6) << 3 | m << 2);
}

// Four FP4 codes, one per byte, -> four E4M3 bytes (the register path: one lookup per half, sign by OR).
W4A8_HD uint32_t Fp4BytesToE4M3x4(uint32_t code_bytes) {
  const uint32_t sel = (code_bytes | (code_bytes >> 12)) & 0x7777u;
  // E4M3 bytes of 0, 0.5, 1, 1.5 | 2, 3, 4, 6
  const uint32_t mag = BytePerm(BytePerm(0x3c383000u, 0x4c484440u, sel), 0, 0x3120u);
  return mag | ((code_bytes & 0x08080808u) << 4);
}

}  // namespace w4a8
