// RoPE cos/sin tables. Written with the same float operations as llama2.c's run.c (powf of a
// float exponent, float product pos * freq, cosf/sinf) so an imported model rotates q and k
// bit-for-bit like the reference runtime it came from.
#include <cmath>

#include "w4a8/tensor_ops.h"

namespace w4a8 {

Status RopeTablesF32(size_t seq_len, size_t head_size, float theta, float* cos_out, float* sin_out) {
  if (head_size == 0 || head_size % 2 != 0 || !(theta > 0.0f)) return Status::kInvalidArgument;
  if (seq_len == 0) return Status::kOk;
  if (!cos_out || !sin_out) return Status::kInvalidArgument;
  const size_t half = head_size / 2;
  for (size_t i = 0; i < half; ++i) {
    const float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_size);
    for (size_t pos = 0; pos < seq_len; ++pos) {
      const float val = (float)pos * freq;
      cos_out[pos * half + i] = cosf(val);
      sin_out[pos * half + i] = sinf(val);
    }
  }
  return Status::kOk;
}

}  // namespace w4a8
