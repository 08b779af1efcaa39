// GemmW4A8: argument checks, activation quantization, and the split of the output into tiles that the
// thread pool hands to one ISA's kernel (kernel and tile shapes: the ISA's plan in dispatch.cpp). Every
// output element is produced by exactly one tile, in one fixed order, so results do not depend on the
// thread count or on scheduling.
#include <algorithm>
#include <new>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/thread_pool.h"
#include "cpu/w4a8_internal.h"
#include "w4a8/cpu_kernels.h"

namespace w4a8::cpu {
namespace {

using w4a8k::QuantizedActs;
using w4a8k::Tile;

bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = (uintptr_t)a, pb = (uintptr_t)b;
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

Status GemmImpl(const PackedWeight& w, Isa isa, const GemmArgs& a) {
  if ((int)isa < 0 || (int)isa > 3) return Status::kInvalidArgument;
  if (a.m <= 0 || !a.x || !a.y) return Status::kInvalidArgument;
  if (a.act != ActQuant::kPerTokenPerGroup && a.act != ActQuant::kPerToken) return Status::kInvalidArgument;
  const CpuPackedView& v = w.view();
  if (v.n <= 0 || v.k <= 0 || !v.codes) return Status::kInvalidArgument;
  if (Overlaps(a.y, sizeof(float) * a.m * (size_t)v.n, a.x, sizeof(float) * a.m * (size_t)v.k) ||
      (a.bias && Overlaps(a.y, sizeof(float) * a.m * (size_t)v.n, a.bias, sizeof(float) * v.n))) {
    return Status::kInvalidArgument;
  }
  if (!IsaAvailable(isa)) return Status::kUnsupported;

  const CpuDispatch& d = DispatchFor(isa);
  const W4A8Plan plan = d.w4a8_plan(a.m);
  const int32_t m_rows = (a.m + plan.row_multiple - 1) / plan.row_multiple * plan.row_multiple;
  std::vector<int8_t> q((size_t)m_rows * v.k_padded);  // zero-filled: padding rows stay 0
  std::vector<float> x_scale((size_t)m_rows * v.blocks_per_row);
  std::vector<int32_t> x_sum((size_t)m_rows * v.blocks_per_row);
  const QuantizedActs acts{a.m, m_rows, v.k_padded, v.blocks_per_row, q.data(), x_scale.data(), x_sum.data()};

  const QuantizeRowsFn quantize_rows = d.quantize_rows;
  constexpr int32_t kQuantRows = 8;
  ParallelFor((a.m + kQuantRows - 1) / kQuantRows, [&](int64_t i) {
    const int32_t m0 = (int32_t)i * kQuantRows, m1 = std::min(a.m, m0 + kQuantRows);
    quantize_rows(a.x, v.k, v.group_size, a.act, m0, m1, acts);
  });

  const W4A8TileFn kernel = plan.tile;
  const int32_t panels_per_tile = plan.panels_per_tile, rows_per_tile = plan.rows_per_tile;
  const int32_t panel_tiles = (v.n_panels + panels_per_tile - 1) / panels_per_tile;
  const int32_t row_tiles = (a.m + rows_per_tile - 1) / rows_per_tile;
  ParallelFor((int64_t)panel_tiles * row_tiles, [&](int64_t i) {
    const int32_t pt = (int32_t)(i / row_tiles), rt = (int32_t)(i % row_tiles);
    const Tile t{rt * rows_per_tile, std::min(a.m, (rt + 1) * rows_per_tile), pt * panels_per_tile,
                 std::min(v.n_panels, (pt + 1) * panels_per_tile)};
    kernel(v, acts, a.bias, a.y, t);
  });
  return Status::kOk;
}

}  // namespace

Status GemmW4A8WithIsa(const PackedWeight& w, Isa isa, const GemmArgs& a) {
  try {
    return GemmImpl(w, isa, a);
  } catch (const std::bad_alloc&) {  // scratch buffers or the pool's job record
    return Status::kOutOfMemory;
  }
}

Status GemmW4A8(const PackedWeight& w, const GemmArgs& a) { return GemmW4A8WithIsa(w, w.isa(), a); }

}  // namespace w4a8::cpu
