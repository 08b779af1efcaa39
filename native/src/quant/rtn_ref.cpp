// The scalar reference of round-to-nearest weight quantization: one group at a time, one element at
// a time, written for obviousness. QuantizeWeight (rtn.cpp) must match it bit for bit.
#include <cmath>
#include <cstring>

#include "quant/group_codec.h"
#include "w4a8/quant.h"

namespace w4a8 {

Status QuantizeWeightRef(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                         const QuantizedOutputs& out) {
  if (CheckWeightQuantConfig(cfg) != Status::kOk || k <= 0 || n <= 0 || !w || !out.codes || !out.scales)
    return Status::kInvalidArgument;
  if (HasZeroPoints(cfg) && !out.zero_points) return Status::kInvalidArgument;
  for (size_t i = 0; i < (size_t)k * n; ++i)
    if (!std::isfinite(w[i])) return Status::kNumericalError;
  const bool along_k = cfg.grouping == Grouping::kAlongK;
  memset(out.codes, 0, QuantCodeBytes(cfg, k, n));
  if (out.zero_points) memset(out.zero_points, 0, QuantZeroPointBytes(cfg, k, n));
  // A group is (channel c, block b): along K, c = output n and the block runs over k;
  // along N, c = input k and the block runs over n.
  const int32_t channels = along_k ? n : k, length = along_k ? k : n;
  const int32_t g = cfg.group_size > 0 ? cfg.group_size : length;
  const int32_t blocks = (length + g - 1) / g;
  const int32_t layout_g = along_k ? LayoutGroupSize(cfg, k) : g;
  const int32_t layout_blocks = along_k ? (k + layout_g - 1) / layout_g : blocks;
  const size_t row_nibbles = (size_t)layout_blocks * layout_g;
  for (int32_t c = 0; c < channels; ++c) {
    for (int32_t b = 0; b < blocks; ++b) {
      const int32_t begin = b * g, end = std::min(length, begin + g);
      auto at = [&](int32_t i) -> size_t { return along_k ? (size_t)i * n + c : (size_t)c * n + i; };
      float lo = w[at(begin)], hi = lo;
      for (int32_t i = begin; i < end; ++i) {
        lo = std::min(lo, w[at(i)]);
        hi = std::max(hi, w[at(i)]);
      }
      int32_t lb0 = b, lb1 = b + 1;
      if (along_k) quant::LayoutBlocksOf(b, g, k, layout_g, &lb0, &lb1);
      const float r = (along_k && group_clip) ? group_clip[(size_t)c * layout_blocks + lb0] : cfg.clip_ratio;
      const quant::GroupParams p = quant::ParamsFromRange(lo, hi, cfg, r);
      for (int32_t lb = lb0; lb < lb1; ++lb) {
        out.scales[(size_t)c * layout_blocks + lb] = p.scale;
        if (out.zero_points) {
          if (along_k) quant::SetNibble(out.zero_points, (size_t)c * ((layout_blocks + 1) / 2) * 2 + lb, p.zero_point);
          else out.zero_points[(size_t)c * blocks + b] = (uint8_t)p.zero_point;
        }
      }
      for (int32_t i = begin; i < end; ++i) {
        const int code = quant::QuantizeCode(w[at(i)], p, cfg.format);
        if (along_k) {
          quant::SetNibble(out.codes, (size_t)c * row_nibbles + i, code);
        } else {
          out.codes[at(i)] = (uint8_t)code;
        }
        if (out.dequantized) out.dequantized[at(i)] = quant::DequantizeCode(code, p, cfg.format);
      }
    }
  }
  return Status::kOk;
}

}  // namespace w4a8
