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

// Quantized-activation buffers kept per calling thread between calls: a decode step makes hundreds of
// small calls, and three allocations (one zero-filled) per call were a visible part of a 10 us GEMV.
// Large buffers (prefill) are allocated per call so that no thread keeps megabytes for good; `busy`
// covers a GemmW4A8 nested inside a task on the same thread (it allocates its own).
constexpr size_t kScratchKeepBytes = 1 << 20;
struct ActScratch {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
  bool busy = false;
};
thread_local ActScratch tls_scratch;

class ActBuffers {
 public:
  ActBuffers(size_t q_bytes, size_t meta) {
    ActScratch* s = &tls_scratch;
    if (s->busy || q_bytes > kScratchKeepBytes) {
      s = &own_;
    } else {
      s->busy = true;
      held_ = s;
    }
    if (s->q.size() < q_bytes) s->q.resize(q_bytes);
    if (s->scale.size() < meta) s->scale.resize(meta);
    if (s->sum.size() < meta) s->sum.resize(meta);
    q = s->q.data();
    scale = s->scale.data();
    sum = s->sum.data();
  }
  ~ActBuffers() {
    if (held_) held_->busy = false;
  }
  ActBuffers(const ActBuffers&) = delete;
  ActBuffers& operator=(const ActBuffers&) = delete;
  int8_t* q;
  float* scale;
  int32_t* sum;

 private:
  ActScratch own_;
  ActScratch* held_ = nullptr;
};

bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = (uintptr_t)a, pb = (uintptr_t)b;
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

Status GemmImpl(const PackedWeight& w, Isa isa, const GemmArgs& a, const w4a8k::GemmSideWork* side) {
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
  // Rows [0, m) are written whole by the quantizer (k >= K included); padding rows are zeroed here.
  ActBuffers buf((size_t)m_rows * v.k_padded, (size_t)m_rows * v.blocks_per_row);
  const size_t pad_rows = (size_t)(m_rows - a.m);
  std::fill_n(buf.q + (size_t)a.m * v.k_padded, pad_rows * v.k_padded, (int8_t)0);
  std::fill_n(buf.scale + (size_t)a.m * v.blocks_per_row, pad_rows * v.blocks_per_row, 0.0f);
  std::fill_n(buf.sum + (size_t)a.m * v.blocks_per_row, pad_rows * v.blocks_per_row, 0);
  const QuantizedActs acts{a.m, m_rows, v.k_padded, v.blocks_per_row, buf.q, buf.scale, buf.sum};

  const QuantizeRowsFn quantize_rows = d.quantize_rows;
  const bool rows_hook = side && side->rows_quantized, tile_hook = side && side->tile_written;
  ParallelFor((a.m + w4a8k::kQuantRows - 1) / w4a8k::kQuantRows, [&](int64_t i) {
    const int32_t m0 = (int32_t)i * w4a8k::kQuantRows, m1 = std::min(a.m, m0 + w4a8k::kQuantRows);
    quantize_rows(a.x, v.k, v.group_size, a.act, m0, m1, acts);
    if (rows_hook) side->rows_quantized(m0, m1, acts);
  });

  const W4A8TileFn kernel = plan.tile;
  const int32_t panels_per_tile = plan.panels_per_tile, rows_per_tile = plan.rows_per_tile;
  const int32_t panel_tiles = (v.n_panels + panels_per_tile - 1) / panels_per_tile;
  const int32_t row_tiles = (a.m + rows_per_tile - 1) / rows_per_tile;
  // Side tasks first: they are claimed before the tiles, so none is left for the end of the call.
  const int64_t side_tasks = side ? side->tasks : 0;
  ParallelFor(side_tasks + (int64_t)panel_tiles * row_tiles, [&](int64_t i) {
    if (i < side_tasks) return side->run(i, acts);
    i -= side_tasks;
    const int32_t pt = (int32_t)(i / row_tiles), rt = (int32_t)(i % row_tiles);
    const Tile t{rt * rows_per_tile, std::min(a.m, (rt + 1) * rows_per_tile), pt * panels_per_tile,
                 std::min(v.n_panels, (pt + 1) * panels_per_tile)};
    kernel(v, acts, a.bias, a.y, t);
    if (tile_hook) side->tile_written(t.m0, t.m1, t.p0 * kCpuPanelN, std::min(v.n, t.p1 * kCpuPanelN));
  });
  return side && side->after ? side->after(acts) : Status::kOk;
}

}  // namespace

Status GemmW4A8WithIsa(const PackedWeight& w, Isa isa, const GemmArgs& a) {
  try {
    return GemmImpl(w, isa, a, nullptr);
  } catch (const std::bad_alloc&) {  // scratch buffers or the pool's job record
    return Status::kOutOfMemory;
  }
}

Status w4a8k::GemmW4A8WithSideWork(const PackedWeight& w, Isa isa, const GemmArgs& a, const GemmSideWork& side) {
  try {
    return GemmImpl(w, isa, a, &side);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
}

Status GemmW4A8(const PackedWeight& w, const GemmArgs& a) { return GemmW4A8WithIsa(w, w.isa(), a); }

}  // namespace w4a8::cpu
