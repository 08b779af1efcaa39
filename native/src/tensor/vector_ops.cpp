// Element-wise fp32 division and reciprocal: plain IEEE operations (the compiler vectorizes the
// loops; vector division is correctly rounded too), so results equal ONNX Div / Reciprocal.
#include "w4a8/tensor_ops.h"

namespace w4a8 {
namespace {

// Same buffer is fine (element i only reads index i); a shifted overlap is not.
bool BadOverlap(const float* in, const float* out, size_t n) { return in != out && in < out + n && out < in + n; }

}  // namespace

Status DivideF32(const float* a, const float* b, float* out, size_t n) {
  if (n == 0) return Status::kOk;
  if (!a || !b || !out || BadOverlap(a, out, n) || BadOverlap(b, out, n)) return Status::kInvalidArgument;
  for (size_t i = 0; i < n; ++i) out[i] = a[i] / b[i];
  return Status::kOk;
}

Status ReciprocalF32(const float* a, float* out, size_t n) {
  if (n == 0) return Status::kOk;
  if (!a || !out || BadOverlap(a, out, n)) return Status::kInvalidArgument;
  for (size_t i = 0; i < n; ++i) out[i] = 1.0f / a[i];
  return Status::kOk;
}

}  // namespace w4a8
