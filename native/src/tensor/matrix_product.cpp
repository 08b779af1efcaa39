// A Kronecker factor stored as a product (PEFT LoKr's w1_a @ w1_b), multiplied out once when an
// adapter is fused into W4A8MatMul. The blocked GemmF32 does the work; transposing the result is
// the same GEMM on transposed operands ((L R)^T = R^T L^T), so no separate transpose pass.
#include <vector>

#include "w4a8/linalg.h"
#include "w4a8/tensor_ops.h"

namespace w4a8 {
namespace {

bool Valid(const float* left, const float* right, size_t rows, size_t rank, size_t cols, const float* out) {
  if (!left || !right || !out || rows == 0 || rank == 0 || cols == 0) return false;
  const size_t n_out = rows * cols;
  // out must not overlap either input.
  const auto apart = [&](const float* in, size_t n) { return out + n_out <= in || in + n <= out; };
  return apart(left, rows * rank) && apart(right, rank * cols);
}

}  // namespace

Status MatrixProductF32(const float* left, const float* right, size_t rows, size_t rank, size_t cols, float alpha,
                        bool transpose_out, float* out) {
  if (!Valid(left, right, rows, rank, cols, out)) return Status::kInvalidArgument;
  if (!transpose_out) {
    GemmF32(false, false, (int64_t)rows, (int64_t)cols, (int64_t)rank, alpha, left, (int64_t)rank, right,
            (int64_t)cols, 0.0f, out, (int64_t)cols);
  } else {
    // out [cols][rows] = R^T [cols][rank] @ L^T [rank][rows].
    GemmF32(true, true, (int64_t)cols, (int64_t)rows, (int64_t)rank, alpha, right, (int64_t)cols, left,
            (int64_t)rank, 0.0f, out, (int64_t)rows);
  }
  return Status::kOk;
}

Status MatrixProductF32Ref(const float* left, const float* right, size_t rows, size_t rank, size_t cols, float alpha,
                           bool transpose_out, float* out) {
  if (!Valid(left, right, rows, rank, cols, out)) return Status::kInvalidArgument;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      double s = 0;
      for (size_t r = 0; r < rank; ++r) s += (double)left[i * rank + r] * right[r * cols + j];
      out[transpose_out ? j * rows + i : i * cols + j] = (float)(alpha * s);
    }
  return Status::kOk;
}

}  // namespace w4a8
