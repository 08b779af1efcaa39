// The int4 nibble transpose of the QDQ export: canonical [N][K/2] codes to an ONNX INT4/UINT4 [K, N]
// tensor. 4-bit elements cannot be addressed directly, so the fast path unpacks a tile of rows x
// columns into bytes (reading contiguous row bytes), then writes the transposed tile two nibbles at
// a time where the output is byte aligned. Single-threaded: the addon runs it on the libuv pool.
#include <algorithm>
#include <cstring>

#include "w4a8/tensor_ops.h"

namespace w4a8 {
namespace {

inline uint8_t NibbleAt(const uint8_t* packed, size_t packed_cols, size_t r, size_t c) {
  const uint8_t byte = packed[r * packed_cols + c / 2];
  return (c & 1) ? (uint8_t)(byte >> 4) : (uint8_t)(byte & 0x0f);
}

inline void SetNibble(uint8_t* out, size_t j, uint8_t v) {
  uint8_t& byte = out[j / 2];
  byte = (j & 1) ? (uint8_t)((byte & 0x0f) | (v << 4)) : (uint8_t)((byte & 0xf0) | v);
}

Status Check(const uint8_t* packed, size_t rows, size_t packed_cols, size_t valid_cols, const uint8_t* out) {
  if (valid_cols > 2 * packed_cols) return Status::kInvalidArgument;
  if (rows == 0 || valid_cols == 0) return Status::kOk;
  if (!packed || !out) return Status::kInvalidArgument;
  const size_t in_bytes = rows * packed_cols, out_bytes = TransposedNibbleBytes(rows, valid_cols);
  if (packed < out + out_bytes && out < packed + in_bytes) return Status::kInvalidArgument;
  return Status::kOk;
}

constexpr size_t kTile = 64;  // 64 x 64 nibbles unpacked to 4 KiB

}  // namespace

Status TransposeNibblesRef(const uint8_t* packed, size_t rows, size_t packed_cols, size_t valid_cols, bool flip_sign,
                           uint8_t* out) {
  if (Status s = Check(packed, rows, packed_cols, valid_cols, out); s != Status::kOk) return s;
  const size_t total = rows * valid_cols;
  if (total == 0) return Status::kOk;
  std::memset(out, 0, TransposedNibbleBytes(rows, valid_cols));  // the padding nibble stays 0
  const uint8_t flip = flip_sign ? 8 : 0;
  for (size_t c = 0; c < valid_cols; ++c)
    for (size_t r = 0; r < rows; ++r) SetNibble(out, c * rows + r, NibbleAt(packed, packed_cols, r, c) ^ flip);
  return Status::kOk;
}

Status TransposeNibbles(const uint8_t* packed, size_t rows, size_t packed_cols, size_t valid_cols, bool flip_sign,
                        uint8_t* out) {
  if (Status s = Check(packed, rows, packed_cols, valid_cols, out); s != Status::kOk) return s;
  const size_t total = rows * valid_cols;
  if (total == 0) return Status::kOk;
  const size_t out_bytes = TransposedNibbleBytes(rows, valid_cols);
  out[out_bytes - 1] = 0;  // the padding nibble of an odd count stays 0; everything else is written
  const uint8_t flip = flip_sign ? 8 : 0;
  uint8_t tile[kTile][kTile];  // [column][row] of the tile, one nibble per byte
  for (size_t r0 = 0; r0 < rows; r0 += kTile) {
    const size_t nr = std::min(kTile, rows - r0);
    for (size_t c0 = 0; c0 < valid_cols; c0 += kTile) {  // c0 even: a tile starts on a byte
      const size_t nc = std::min(kTile, valid_cols - c0);
      for (size_t r = 0; r < nr; ++r) {
        const uint8_t* src = packed + (r0 + r) * packed_cols + c0 / 2;
        for (size_t c = 0; c + 1 < nc; c += 2) {
          tile[c][r] = (uint8_t)((src[c / 2] & 0x0f) ^ flip);
          tile[c + 1][r] = (uint8_t)((src[c / 2] >> 4) ^ flip);
        }
        if (nc & 1) tile[nc - 1][r] = (uint8_t)((src[(nc - 1) / 2] & 0x0f) ^ flip);
      }
      for (size_t c = 0; c < nc; ++c) {
        size_t j = (c0 + c) * rows + r0;  // output nibble index of (row r0, column c0 + c)
        const uint8_t* col = tile[c];
        size_t r = 0;
        if (j & 1) SetNibble(out, j++, col[r++]);
        for (; r + 1 < nr; r += 2, j += 2) out[j / 2] = (uint8_t)(col[r] | (col[r + 1] << 4));
        if (r < nr) SetNibble(out, j, col[r]);
      }
    }
  }
  return Status::kOk;
}

}  // namespace w4a8
