// Round-to-nearest weight quantization, fast path. W arrives as [K][N] (MatMul B), while groups run
// along K within one output column: so we sweep a block of rows at a time, keeping per-column
// min/max in contiguous arrays (vectorisable), then emit each column's code bytes. Threads split N.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "linalg/parallel.h"
#include "quant/group_codec.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {
namespace {

bool AllFinite(const float* w, size_t count) {
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    memcpy(&bits, &w[i], 4);
    bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

void QuantizeColumnsAlongK(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                           const QuantizedOutputs& out, int32_t n0, int32_t n1) {
  const int32_t g = cfg.group_size > 0 ? cfg.group_size : k;
  const int32_t blocks = (k + g - 1) / g;
  const int32_t layout_g = LayoutGroupSize(cfg, k);
  const int32_t layout_blocks = (k + layout_g - 1) / layout_g;
  const size_t row_code_bytes = (size_t)layout_blocks * (layout_g / 2);
  const size_t zp_row_bytes = (size_t)(layout_blocks + 1) / 2;
  const int32_t width = n1 - n0;
  std::vector<float> lo(width), hi(width);
  std::vector<quant::GroupParams> params(width);
  for (int32_t b = 0; b < blocks; ++b) {
    const int32_t k0 = b * g, k1 = std::min(k, k0 + g);
    const float* first = w + (size_t)k0 * n + n0;
    std::copy(first, first + width, lo.begin());
    std::copy(first, first + width, hi.begin());
    for (int32_t kk = k0 + 1; kk < k1; ++kk) {
      const float* row = w + (size_t)kk * n + n0;
      for (int32_t j = 0; j < width; ++j) {
        lo[j] = std::min(lo[j], row[j]);
        hi[j] = std::max(hi[j], row[j]);
      }
    }
    int32_t lb0, lb1;
    quant::LayoutBlocksOf(b, g, k, layout_g, &lb0, &lb1);
    for (int32_t j = 0; j < width; ++j) {
      const int32_t col = n0 + j;
      const float r = group_clip ? group_clip[(size_t)col * layout_blocks + lb0] : cfg.clip_ratio;
      params[j] = quant::ParamsFromRange(lo[j], hi[j], cfg, r);
      for (int32_t lb = lb0; lb < lb1; ++lb) {
        out.scales[(size_t)col * layout_blocks + lb] = params[j].scale;
        if (out.zero_points) quant::SetNibble(out.zero_points + (size_t)col * zp_row_bytes, lb, params[j].zero_point);
      }
    }
    // Two rows at a time make one code byte per column.
    for (int32_t kk = k0; kk < k1; kk += 2) {
      const bool pair = kk + 1 < k1;
      const float* r0 = w + (size_t)kk * n + n0;
      const float* r1 = pair ? r0 + n : nullptr;
      float* d0 = out.dequantized ? out.dequantized + (size_t)kk * n + n0 : nullptr;
      float* d1 = (d0 && pair) ? d0 + n : nullptr;
      const size_t byte_in_row = (size_t)kk / 2;  // blocks are contiguous: nibble k of the row
      for (int32_t j = 0; j < width; ++j) {
        const quant::GroupParams& p = params[j];
        const int c0 = quant::QuantizeCode(r0[j], p, cfg.format);
        const int c1 = pair ? quant::QuantizeCode(r1[j], p, cfg.format) : 0;
        out.codes[(size_t)(n0 + j) * row_code_bytes + byte_in_row] = (uint8_t)(c0 | (c1 << 4));
        if (d0) d0[j] = quant::DequantizeCode(c0, p, cfg.format);
        if (d1) d1[j] = quant::DequantizeCode(c1, p, cfg.format);
      }
    }
  }
}

// Groups along N are contiguous runs of one row of W[K][N] (one code byte per element, one scale
// and zero point per (row, block)): each row is independent, so threads split K.
void QuantizeRowsAlongN(const float* w, int32_t n, const WeightQuantConfig& cfg, const QuantizedOutputs& out, int32_t k0,
                        int32_t k1) {
  const int32_t g = cfg.group_size > 0 ? cfg.group_size : n;
  const int32_t blocks = (n + g - 1) / g;
  for (int32_t kk = k0; kk < k1; ++kk) {
    const float* row = w + (size_t)kk * n;
    uint8_t* codes = out.codes + (size_t)kk * n;
    float* deq = out.dequantized ? out.dequantized + (size_t)kk * n : nullptr;
    for (int32_t b = 0; b < blocks; ++b) {
      const int32_t j0 = b * g, j1 = std::min(n, j0 + g);
      float lo = row[j0], hi = row[j0];
      for (int32_t j = j0 + 1; j < j1; ++j) {
        lo = std::min(lo, row[j]);
        hi = std::max(hi, row[j]);
      }
      const quant::GroupParams p = quant::ParamsFromRange(lo, hi, cfg, cfg.clip_ratio);
      out.scales[(size_t)kk * blocks + b] = p.scale;
      if (out.zero_points) out.zero_points[(size_t)kk * blocks + b] = (uint8_t)p.zero_point;
      for (int32_t j = j0; j < j1; ++j) {
        const int code = quant::QuantizeCode(row[j], p, cfg.format);
        codes[j] = (uint8_t)code;
        if (deq) deq[j] = quant::DequantizeCode(code, p, cfg.format);
      }
    }
  }
}

}  // namespace

static Status QuantizeWeightUnguarded(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                                      const QuantizedOutputs& out, int threads) {
  if (CheckWeightQuantConfig(cfg) != Status::kOk || k <= 0 || n <= 0 || !w || !out.codes || !out.scales)
    return Status::kInvalidArgument;
  if (HasZeroPoints(cfg) && !out.zero_points) return Status::kInvalidArgument;
  if (!AllFinite(w, (size_t)k * n)) return Status::kNumericalError;
  memset(out.codes, 0, QuantCodeBytes(cfg, k, n));
  if (out.zero_points) memset(out.zero_points, 0, QuantZeroPointBytes(cfg, k, n));
  const int t = ChunkCount(threads);
  if (cfg.grouping == Grouping::kAlongN) {
    ParallelRanges((double)k * n < 1e5 ? 1 : t, k, 16, [&](int64_t k0, int64_t k1) {
      QuantizeRowsAlongN(w, n, cfg, out, (int32_t)k0, (int32_t)k1);
    });
    return Status::kOk;
  }
  ParallelRanges((double)k * n < 1e5 ? 1 : t, n, 64, [&](int64_t n0, int64_t n1) {
    QuantizeColumnsAlongK(w, k, n, cfg, group_clip, out, (int32_t)n0, (int32_t)n1);
  });
  return Status::kOk;
}

Status QuantizeWeight(const float* w, int32_t k, int32_t n, const WeightQuantConfig& cfg, const float* group_clip,
                      const QuantizedOutputs& out, int threads) {
  return StatusFromExceptions([&] { return QuantizeWeightUnguarded(w, k, n, cfg, group_clip, out, threads); });
}

}  // namespace w4a8
