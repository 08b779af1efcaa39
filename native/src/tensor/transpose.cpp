// 2-D fp32 transpose. Tiles keep both the rows read and the rows written in L1, so a
// [11008, 4096] weight transposes at memory speed instead of one cache miss per element.
#include <algorithm>

#include "w4a8/tensor_ops.h"

namespace w4a8 {
namespace {

constexpr size_t kTile = 32;  // 32 x 32 floats = 4 KiB per side

bool Overlaps(const float* a, const float* b, size_t n) { return a < b + n && b < a + n; }

}  // namespace

Status TransposeF32Ref(const float* src, float* dst, size_t rows, size_t cols) {
  if (rows == 0 || cols == 0) return Status::kOk;
  if (!src || !dst || Overlaps(src, dst, rows * cols)) return Status::kInvalidArgument;
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  return Status::kOk;
}

Status TransposeF32(const float* src, float* dst, size_t rows, size_t cols) {
  if (rows == 0 || cols == 0) return Status::kOk;
  if (!src || !dst || Overlaps(src, dst, rows * cols)) return Status::kInvalidArgument;
  for (size_t r0 = 0; r0 < rows; r0 += kTile) {
    const size_t r1 = std::min(rows, r0 + kTile);
    for (size_t c0 = 0; c0 < cols; c0 += kTile) {
      const size_t c1 = std::min(cols, c0 + kTile);
      for (size_t c = c0; c < c1; ++c) {
        float* out = dst + c * rows;
        for (size_t r = r0; r < r1; ++r) out[r] = src[r * cols + c];
      }
    }
  }
  return Status::kOk;
}

}  // namespace w4a8
