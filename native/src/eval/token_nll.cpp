// Log-softmax NLL and argmax over logits rows (fp32 or fp16 bit patterns).
#include <cmath>
#include <limits>

#include "w4a8/eval_ops.h"
#include "w4a8/half.h"

namespace w4a8 {
namespace {

template <typename Load>
double RowNll(Load load, size_t vocab, size_t target) {
  // Subtracting the row maximum keeps exp() in range; the sum runs in double so that a
  // 150k-entry vocabulary loses no precision to accumulation order.
  float max_value = -std::numeric_limits<float>::infinity();
  bool any_nan = false;
  for (size_t v = 0; v < vocab; ++v) {
    const float x = load(v);
    if (std::isnan(x)) any_nan = true;
    else if (x > max_value) max_value = x;
  }
  if (any_nan) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(max_value)) return max_value > 0 ? std::numeric_limits<double>::quiet_NaN()
                                                  : std::numeric_limits<double>::infinity();
  double sum = 0.0;
  for (size_t v = 0; v < vocab; ++v) sum += std::exp((double)load(v) - (double)max_value);
  return std::log(sum) + (double)max_value - (double)load(target);
}

template <typename Load>
int64_t Argmax(Load load, size_t vocab) {
  int64_t best = -1;
  float best_value = 0.0f;
  for (size_t v = 0; v < vocab; ++v) {
    const float x = load(v);
    if (std::isnan(x)) continue;
    if (best < 0 || x > best_value) {  // strict '>' keeps the lowest index on ties
      best = (int64_t)v;
      best_value = x;
    }
  }
  return best;
}

}  // namespace

Status TokenNll(const void* logits, LogitsType type, size_t rows, size_t vocab, const int32_t* targets,
                double* nll_out, double* total) {
  if ((rows > 0 && (!logits || !targets || !nll_out)) || !total || vocab == 0) return Status::kInvalidArgument;
  if (type != LogitsType::kFloat32 && type != LogitsType::kFloat16) return Status::kInvalidArgument;
  for (size_t r = 0; r < rows; ++r)
    if (targets[r] < 0 || (size_t)targets[r] >= vocab) return Status::kInvalidArgument;
  double sum = 0.0;
  for (size_t r = 0; r < rows; ++r) {
    double nll;
    if (type == LogitsType::kFloat32) {
      const float* row = static_cast<const float*>(logits) + r * vocab;
      nll = RowNll([row](size_t v) { return row[v]; }, vocab, (size_t)targets[r]);
    } else {
      const uint16_t* row = static_cast<const uint16_t*>(logits) + r * vocab;
      nll = RowNll([row](size_t v) { return HalfToFloat(row[v]); }, vocab, (size_t)targets[r]);
    }
    nll_out[r] = nll;
    sum += nll;
  }
  *total = sum;
  return Status::kOk;
}

Status RowArgmax(const void* row, LogitsType type, size_t vocab, int64_t* index) {
  if (!index || (vocab > 0 && !row)) return Status::kInvalidArgument;
  if (type == LogitsType::kFloat32) {
    const float* p = static_cast<const float*>(row);
    *index = Argmax([p](size_t v) { return p[v]; }, vocab);
  } else if (type == LogitsType::kFloat16) {
    const uint16_t* p = static_cast<const uint16_t*>(row);
    *index = Argmax([p](size_t v) { return HalfToFloat(p[v]); }, vocab);
  } else {
    return Status::kInvalidArgument;
  }
  return Status::kOk;
}

}  // namespace w4a8
