// Config validation and output sizes for the weight quantizers.
#include <cmath>

#include "w4a8/quant.h"

namespace w4a8 {

Status CheckWeightQuantConfig(const WeightQuantConfig& cfg) {
  if (cfg.format != WeightFormat::kInt4 && cfg.format != WeightFormat::kFp4E2M1) return Status::kInvalidArgument;
  const int32_t g = cfg.group_size;
  if (g != 0 && (g < kMinGroupSize || g > kMaxGroupSize || (g & (g - 1)) != 0)) return Status::kInvalidArgument;
  if (cfg.grouping != Grouping::kAlongK && cfg.grouping != Grouping::kAlongN) return Status::kInvalidArgument;
  if (!(cfg.clip_ratio > 0.0f && cfg.clip_ratio <= 1.0f)) return Status::kInvalidArgument;
  const int32_t pb = cfg.per_channel_block;
  if (pb != 0 && (pb < kMinGroupSize || pb > kMaxGroupSize || (pb & (pb - 1)) != 0)) return Status::kInvalidArgument;
  return Status::kOk;
}

int32_t LayoutGroupSize(const WeightQuantConfig& cfg, int32_t k) {
  if (cfg.group_size > 0) return cfg.group_size;
  if (cfg.per_channel_block > 0) return cfg.per_channel_block;
  int32_t g = kMinGroupSize;
  while (g < k && g < (1 << 30)) g <<= 1;
  return g;
}

bool HasZeroPoints(const WeightQuantConfig& cfg) { return cfg.format == WeightFormat::kInt4 && !cfg.symmetric; }

size_t QuantCodeBytes(const WeightQuantConfig& cfg, int32_t k, int32_t n) {
  if (cfg.grouping == Grouping::kAlongN) return (size_t)k * n;
  return CodeBytes(n, k, LayoutGroupSize(cfg, k));
}

size_t QuantScaleCount(const WeightQuantConfig& cfg, int32_t k, int32_t n) {
  if (cfg.grouping == Grouping::kAlongN) {
    const int32_t g = cfg.group_size > 0 ? cfg.group_size : n;
    return (size_t)k * ((n + g - 1) / g);
  }
  return ScaleCount(n, k, LayoutGroupSize(cfg, k));
}

size_t QuantZeroPointBytes(const WeightQuantConfig& cfg, int32_t k, int32_t n) {
  if (!HasZeroPoints(cfg)) return 0;
  if (cfg.grouping == Grouping::kAlongN) return QuantScaleCount(cfg, k, n);
  return ZeroPointBytes(n, k, LayoutGroupSize(cfg, k));
}

}  // namespace w4a8
