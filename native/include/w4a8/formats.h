// Every packed weight format of w4a8, in one place, for C++ and CUDA.
//
// The canonical quantized weight ("QuantizedWeight") is what the quantizer produces and what
// ONNX Runtime's com.microsoft.MatMulNBits stores, so it round-trips with no repacking:
//
//   logical weight W[n][k], n < N output channels, k < K input channels; y[m][n] = sum_k x[m][k] W[n][k]
//   groups ("blocks") of `group_size` consecutive k within one output channel n;
//   blocks_per_row = ceil(K / group_size); the tail of the last block is padded with code 0 (int4 sym:
//   code 8 would also be 0 after dequantization; the kernels never read padded k anyway).
//
//   codes       uint8 [N][blocks_per_row][group_size / 2]  two 4-bit codes per byte, LOW NIBBLE FIRST
//                                                         (k even -> bits 0..3, k odd -> bits 4..7)
//   scales      float [N][blocks_per_row]
//   zero_points uint8 [N][ceil(blocks_per_row / 2)]       packed like codes (low nibble = even block);
//                                                         absent -> every zero point is 8 (int4 symmetric)
//
// Dequantization of one code q in block b of row n:
//   kInt4 (asymmetric or symmetric): w = (q - zp) * scale, q and zp in 0..15
//   kFp4E2M1:                        w = Fp4E2M1Value(q) * scale   (no zero point)
//
// FP4 E2M1 codes: bit 3 sign, bits 2..1 exponent (bias 1), bit 0 mantissa:
//   magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6. Twice those are the integers 0, 1, 2, 3, 4, 6, 8, 12,
//   so FP4 weights run on the int8 kernels through a 16-entry lookup and a halved scale.
//
// Kernel-specific prepacked layouts (CPU tiles, CUDA register layouts) are declared further down,
// each next to the function that produces it from the canonical layout.
#pragma once
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define W4A8_HD __host__ __device__ inline
#else
#define W4A8_HD inline
#endif

namespace w4a8 {

enum class WeightFormat : int32_t {
  kInt4 = 0,      // 4-bit integer codes, zero points (asymmetric) or implicit 8 (symmetric)
  kFp4E2M1 = 1,   // 4-bit float codes, symmetric, per-group scale
};

constexpr int kInt4DefaultZeroPoint = 8;
constexpr int kMinGroupSize = 16;
constexpr int kMaxGroupSize = 256;

// One quantized weight matrix in the canonical layout (pointers are not owned).
struct QuantizedWeight {
  WeightFormat format;
  int32_t n;            // output channels
  int32_t k;            // input channels
  int32_t group_size;   // 16..256, power of two; per-channel quantization repeats its one scale over
                        // every block (quant.h per_channel_block), or uses one block of K rounded up
  const uint8_t* codes;
  const float* scales;
  const uint8_t* zero_points;  // may be null (symmetric int4, fp4)
};

W4A8_HD int32_t BlocksPerRow(int32_t k, int32_t group_size) { return (k + group_size - 1) / group_size; }
W4A8_HD size_t CodeBytes(int32_t n, int32_t k, int32_t group_size) {
  return (size_t)n * BlocksPerRow(k, group_size) * (group_size / 2);
}
W4A8_HD size_t ScaleCount(int32_t n, int32_t k, int32_t group_size) {
  return (size_t)n * BlocksPerRow(k, group_size);
}
W4A8_HD size_t ZeroPointBytes(int32_t n, int32_t k, int32_t group_size) {
  return (size_t)n * ((BlocksPerRow(k, group_size) + 1) / 2);
}

// The 4-bit code at (row n, input k).
W4A8_HD int CodeAt(const uint8_t* codes, int32_t k_dim, int32_t group_size, int32_t n, int32_t k) {
  const int32_t blocks = BlocksPerRow(k_dim, group_size);
  const size_t byte = (size_t)n * blocks * (group_size / 2) + (size_t)(k / group_size) * (group_size / 2) +
                      (size_t)(k % group_size) / 2;
  return (k & 1) ? (codes[byte] >> 4) : (codes[byte] & 0x0f);
}

// The zero point of block b in row n (8 when zero_points is null).
W4A8_HD int ZeroPointAt(const uint8_t* zero_points, int32_t blocks_per_row, int32_t n, int32_t b) {
  if (!zero_points) return kInt4DefaultZeroPoint;
  const uint8_t byte = zero_points[(size_t)n * ((blocks_per_row + 1) / 2) + b / 2];
  return (b & 1) ? (byte >> 4) : (byte & 0x0f);
}

// FP4 E2M1 code -> value; and -> twice the value as an exact small integer (-12..12).
W4A8_HD int Fp4E2M1TimesTwo(int code) {
  // magnitude*2 for codes 0..7: 0, 1, 2, 3, 4, 6, 8, 12
  const int mag2 = (code & 7) < 4 ? (code & 7) : ((code & 7) == 4 ? 4 : (code & 7) == 5 ? 6 : (code & 7) == 6 ? 8 : 12);
  return (code & 8) ? -mag2 : mag2;
}
W4A8_HD float Fp4E2M1Value(int code) { return 0.5f * (float)Fp4E2M1TimesTwo(code); }

// Dequantized weight W[n][k] (the definition every kernel is tested against).
W4A8_HD float DequantizeAt(const QuantizedWeight& w, int32_t n, int32_t k) {
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  const int32_t b = k / w.group_size;
  const float scale = w.scales[(size_t)n * blocks + b];
  const int q = CodeAt(w.codes, w.k, w.group_size, n, k);
  if (w.format == WeightFormat::kFp4E2M1) return Fp4E2M1Value(q) * scale;
  return (float)(q - ZeroPointAt(w.zero_points, blocks, n, b)) * scale;
}

static_assert(sizeof(WeightFormat) == 4, "WeightFormat is a 32-bit enum shared with TypeScript");
static_assert(kMaxGroupSize / 2 <= 255, "a group's bytes are addressed with 8-bit offsets in packers");
static_assert((kMinGroupSize & (kMinGroupSize - 1)) == 0, "group sizes are powers of two");

// ---------------------------------------------------------------------------------------------
// Int8 correction factors ("Int8Rows"): the low-rank correction y += (x U) V of W4A8MatMul
// (lowrank_u / lowrank_v as int8) stored as two int8 matrices with one fp32 scale per row, both
// rows indexed by the rank component c (so U is stored transposed):
//   ut  int8 [r][K]   ut[c][k] = q(U[k][c]),  us[c] = amax(U[:, c]) / 127
//   v   int8 [r][N]   v[c][n]  = q(V[c][n]),  vs[c] = amax(V[c, :]) / 127
// q is the per-token int8 activation quantizer of act_quant_def.h applied to each row (inv = 127 /
// amax in fp32, round half to even, symmetric, -128 never produced; a zero row has scale 0).
// Dequantized: U[k][c] = ut[c][k] * us[c], V[c][n] = v[c][n] * vs[c] (Int8RowValue). At a 5 %
// budget the int8 factors are 1/4 of the fp32 bytes a decode step streams (1/2 of fp16). The CPU
// kernels never dequantize them: the term is two integer products on int8 per-token activations, with
// t = x U requantized per token to int8 in between (cpu_adapters.h, LowRankInt8Term).
// ---------------------------------------------------------------------------------------------
constexpr int kInt8FactorMax = 127;
W4A8_HD float Int8RowValue(int8_t q, float row_scale) { return (float)q * row_scale; }
static_assert(sizeof(int8_t) == 1 && (int8_t)-kInt8FactorMax == -127, "int8 factors are symmetric, -127..127");

// ---------------------------------------------------------------------------------------------
// CPU prepacked layouts (native/src/cpu): declared below by the CPU kernels.
// ---------------------------------------------------------------------------------------------

// "Panel16x8" layout, produced from the canonical layout by cpu::Prepack (native/src/cpu/prepack.cpp);
// one layout for every CPU ISA. Output channels are cut into panels of 16; K is padded to
// k_padded = blocks_per_row * group_size and cut into chunks of 8. One chunk is 64 bytes:
//   byte j = 4 * nl + kk  (nl = channel within the panel 0..15, kk = 0..3):
//     low nibble  = code(n = 16 * panel + nl, k = 8 * chunk + kk)
//     high nibble = code(n = 16 * panel + nl, k = 8 * chunk + 4 + kk)
// so masking the low nibbles of a 64-byte load gives exactly the u8 operand of one vpdpbusd
// (16 channels x 4 consecutive k) and the high nibbles the next one; AVX2 reads the two 32-byte halves;
// AMX unpacks chunks into VNNI-ordered int8 B tiles. Codes are mapped to the unsigned byte u =
// CpuWeightU8(format, code) (int4: code; fp4: 2*value + 12 in 0..24) and the integer weight is
// u - zero, zero = the int4 zero point or 12 for fp4; the scale is halved for fp4. Hence for all formats:
//   W[n][k] = (CpuWeightU8(format, code) - zero[n][g]) * scale[n][g]
// Padding: channels n >= N have code 0, zero 0 and scale 0; k >= K inside a real channel holds the
// neutral code (int4: the zero point; fp4: 0) so the padded weight is exactly 0.
constexpr int kCpuPanelN = 16;      // output channels per panel
constexpr int kCpuChunkK = 8;       // k per chunk
constexpr int kCpuChunkBytes = 64;  // bytes per chunk (one zmm)
constexpr int kCpuFp4Zero = 12;     // u8 bias of fp4 weights (2*value in -12..12 -> 0..24)
static_assert(kCpuPanelN * kCpuChunkK / 2 == kCpuChunkBytes, "one chunk is 16 channels x 8 k nibbles");
static_assert(kMinGroupSize % kCpuChunkK == 0, "a chunk never straddles two K-groups");

struct CpuPackedView {
  WeightFormat format;
  int32_t n, k, group_size;
  int32_t blocks_per_row;   // ceil(k / group_size)
  int32_t k_padded;         // blocks_per_row * group_size
  int32_t n_panels;         // ceil(n / 16)
  const uint8_t* codes;     // [n_panels][k_padded / 8][64]
  const float* scales;      // [n_panels][blocks_per_row][16] effective scale (fp4: half the canonical one)
  const uint8_t* zeros;     // [n_panels][blocks_per_row][16] zero of the u8 weight (int4 zp; fp4 12)
};

W4A8_HD int CpuWeightU8(WeightFormat format, int code) {
  return format == WeightFormat::kFp4E2M1 ? Fp4E2M1TimesTwo(code) + kCpuFp4Zero : code;
}
// The code at (n, k) in the packed layout (the definition the packer and kernels follow).
W4A8_HD int CpuPackedCodeAt(const CpuPackedView& v, int32_t n, int32_t k) {
  const size_t chunk = (size_t)(n / kCpuPanelN) * (v.k_padded / kCpuChunkK) + (size_t)(k / kCpuChunkK);
  const uint8_t byte = v.codes[chunk * kCpuChunkBytes + 4 * (n % kCpuPanelN) + (k % 4)];
  return (k % kCpuChunkK) < 4 ? (byte & 0x0f) : (byte >> 4);
}
W4A8_HD float CpuPackedDequantizeAt(const CpuPackedView& v, int32_t n, int32_t k) {
  const size_t idx = ((size_t)(n / kCpuPanelN) * v.blocks_per_row + (size_t)(k / v.group_size)) * kCpuPanelN +
                     (size_t)(n % kCpuPanelN);
  return (float)(CpuWeightU8(v.format, CpuPackedCodeAt(v, n, k)) - (int)v.zeros[idx]) * v.scales[idx];
}

// ---------------------------------------------------------------------------------------------
// CUDA prepacked layouts (native/src/cuda): declared below by the CUDA kernels.
// ---------------------------------------------------------------------------------------------

// "Mma8x32" layout, produced from the canonical layout by PackWeightForCuda
// (native/src/cuda/cuda_prepack.cpp, host code); read by the W4A8 GEMM (mma.sync m16n8k32 s8 B fragments,
// 16-byte loads) and by the W4A16 GEMV. N is padded to n_padded (multiple of 128), K to k_padded
// (multiple of 64); groups_padded = ceil(k_padded / group_size).
//   codes uint32 [n_padded/128][k_padded/32][quad 4][lane 32][j 4]: the word (quad, lane, j) of k32 step kb
//     holds channel n = 128*tile + 32*quad + 8*j + lane/4 and, with t = lane % 4,
//     nibble 2i   = code(n, 32*kb + 4t + i)        (byte i of fragment register b0)
//     nibble 2i+1 = code(n, 32*kb + 16 + 4t + i)   (byte i of fragment register b1)
//     so one uint4 per lane is the B operand of 4 adjacent n8 MMAs (cuda_bits.h unpacks it).
//   scales      float [groups_padded][n_padded]  effective scale (fp4: half the canonical one)
//   zero_points uint8 [groups_padded][n_padded]  int4: the zero point (8 when absent); fp4: 0
// W[n][k] = (CudaWeightInt(format, code) - zero) * scale. Padding is exactly zero: k >= K holds the
// neutral code (int4: the zero point, fp4: 0), channels n >= N and groups past the last have scale 0.
constexpr int kCudaTileN = 128;  // channels per tile (4 quads of 32)
constexpr int kCudaTileK = 64;   // k per pipeline stage of the GEMM
constexpr int kCudaMmaK = 32;    // k per packed word set (one mma.sync m16n8k32)

struct CudaPackedView {
  WeightFormat format;
  int32_t n, k, group_size;
  int32_t n_padded, k_padded, groups_padded;
  const uint32_t* codes;
  const float* scales;
  const uint8_t* zero_points;
};

W4A8_HD CudaPackedView CudaPackedShape(WeightFormat format, int32_t n, int32_t k, int32_t group_size) {
  CudaPackedView v{format, n, k, group_size, 0, 0, 0, nullptr, nullptr, nullptr};
  v.n_padded = (n + kCudaTileN - 1) / kCudaTileN * kCudaTileN;
  v.k_padded = (k + kCudaTileK - 1) / kCudaTileK * kCudaTileK;
  v.groups_padded = (v.k_padded + group_size - 1) / group_size;
  return v;
}
W4A8_HD size_t CudaPackedCodeWords(const CudaPackedView& v) { return (size_t)v.n_padded * v.k_padded / 8; }
W4A8_HD size_t CudaPackedScaleCount(const CudaPackedView& v) { return (size_t)v.groups_padded * v.n_padded; }

// Word index and nibble of (n, k) in the codes array (the definition the packer and kernels follow).
W4A8_HD size_t CudaPackedWordIndex(const CudaPackedView& v, int32_t n, int32_t k, int* nibble) {
  const int nl = n % kCudaTileN, kk = k % kCudaMmaK, t = (kk % 16) / 4;
  *nibble = 2 * (kk % 4) + kk / 16;
  const size_t step = (size_t)(n / kCudaTileN) * (v.k_padded / kCudaMmaK) + (size_t)(k / kCudaMmaK);
  return ((step * 4 + nl / 32) * 32 + (size_t)((nl % 8) * 4 + t)) * 4 + (size_t)((nl % 32) / 8);
}
W4A8_HD int CudaWeightInt(WeightFormat format, int code) {
  return format == WeightFormat::kFp4E2M1 ? Fp4E2M1TimesTwo(code) : code;
}
W4A8_HD float CudaPackedDequantizeAt(const CudaPackedView& v, int32_t n, int32_t k) {
  int nibble = 0;
  const uint32_t word = v.codes[CudaPackedWordIndex(v, n, k, &nibble)];
  const int code = (int)((word >> (4 * nibble)) & 0xf);
  const size_t s = (size_t)(k / v.group_size) * v.n_padded + (size_t)n;
  return (float)(CudaWeightInt(v.format, code) - (int)v.zero_points[s]) * v.scales[s];
}

// Fills codes [CudaPackedCodeWords], scales and zero_points [CudaPackedScaleCount] of the shape
// CudaPackedShape(w.format, w.n, w.k, w.group_size). w must be valid (cpu::ValidateQuantizedWeight).
// Host code, inline so that both the CPU tests and the CUDA library use it with no link-order cycle.
inline void PackWeightForCuda(const QuantizedWeight& w, uint32_t* codes, float* scales, uint8_t* zero_points) {
  const CudaPackedView v = CudaPackedShape(w.format, w.n, w.k, w.group_size);
  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  for (size_t i = 0; i < CudaPackedCodeWords(v); ++i) codes[i] = 0;
  for (size_t i = 0; i < CudaPackedScaleCount(v); ++i) {
    scales[i] = 0.0f;  // channels past n and groups past the last stay 0 (so padding is exactly 0)
    zero_points[i] = 0;
  }
  for (int32_t n = 0; n < w.n; ++n) {
    for (int32_t g = 0; g < blocks; ++g) {
      const size_t s = (size_t)g * v.n_padded + n;
      // fp4 runs as the integer 2*value, so its scale is halved (exact in fp32).
      scales[s] = fp4 ? 0.5f * w.scales[(size_t)n * blocks + g] : w.scales[(size_t)n * blocks + g];
      zero_points[s] = fp4 ? 0 : (uint8_t)ZeroPointAt(w.zero_points, blocks, n, g);
    }
    // A row's codes are contiguous, code k in byte k / 2 (blocks hold group_size / 2 bytes each).
    const uint8_t* row = w.codes + (size_t)n * blocks * (w.group_size / 2);
    for (int32_t k = 0; k < v.k_padded; ++k) {
      int code;
      if (k < w.k) {
        code = (k & 1) ? (row[k >> 1] >> 4) : (row[k >> 1] & 0x0f);
      } else {
        // k >= K gets the neutral code: the zero point inside a real group, else 0 (scale 0 there).
        const int32_t g = k / w.group_size;
        code = (fp4 || g >= blocks) ? 0 : ZeroPointAt(w.zero_points, blocks, n, g);
      }
      // The index first: in `a[f(&nibble)] |= x << nibble` C++17 evaluates the right side first,
      // so nibble would still be 0 there (found by the UBSan build, whose codegen follows that order).
      int nibble = 0;
      const size_t word = CudaPackedWordIndex(v, n, k, &nibble);
      codes[word] |= (uint32_t)code << (4 * nibble);
    }
  }
}

}  // namespace w4a8
