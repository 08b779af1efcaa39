// The low-rank correction with int8 factors (formats.h "Int8Rows"; cpu_adapters.h defines the
// numerics): two exact integer products (dispatch table: int8_dots, int8_rows_add) on the per-token
// int8 activations, with the rank-r intermediate requantized per token in between. Also the scalar
// building blocks, the scalar reference twin, the row quantizer, and GemmW4A8LowRankInt8, which
// runs the term inside the GEMM call on the activations the GEMM has quantized (prefill: inside the
// GEMM's quantizing tasks and tiles; decode: as side tasks and a round of its own).
#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "cpu/dispatch.h"
#include "kron_internal.h"
#include "thread_pool.h"
#include "w4a8/act_quant_def.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/formats.h"

namespace w4a8::cpu {
namespace {

using w4a8k::QuantizedActs;

// Integer sums stay exact in int32 while 127 * 128 * k < 2^31 (cpu_adapters.h).
constexpr int32_t kMaxInt8TermDim = 1 << 16;

bool Valid(const LowRankInt8Term& lr) {
  return lr.k >= 1 && lr.r >= 1 && lr.n >= 1 && lr.k <= kMaxInt8TermDim && lr.r <= kMaxInt8TermDim && lr.ut && lr.us &&
         lr.v && lr.vs;
}

int32_t RoundUp(int32_t v, int32_t to) { return (v + to - 1) / to * to; }

// Per-call buffers, kept per calling thread while small (a decode step makes hundreds of calls;
// the term must not allocate on each), allocated per call beyond kKeepBytes. `busy` covers a call
// nested in a task on the same thread.
constexpr size_t kKeepBytes = 1 << 20;
struct TermScratch {
  std::vector<int8_t> xq, wq;      // activations (standalone call) [m][k_padded]; intermediate [m][r4]
  std::vector<int32_t> dots, sum;  // x U in integers [m][r]; sums of the intermediate's codes [m]
  std::vector<float> w, scale;     // the intermediate in fp32 [m][r]; its scales [m]
  std::vector<float> x_scale;      // activations' scales (standalone call) [m][blocks]
  std::vector<int32_t> x_sum;      // and their sums
  bool busy = false;
};
thread_local TermScratch tls_scratch;

class ScratchLease {
 public:
  explicit ScratchLease(size_t bytes) {
    if (tls_scratch.busy || bytes > kKeepBytes) {
      s = &own_;
    } else {
      s = &tls_scratch;
      s->busy = true;
    }
  }
  ~ScratchLease() {
    if (s == &tls_scratch) s->busy = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  TermScratch* s;

 private:
  TermScratch own_;
};

template <typename T>
T* Sized(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// One call of the term on quantized activations: Dots(i) for every i < dot_tasks (in any order, on
// any thread), then Finish. The token scale of row t is acts.scale[t * acts.blocks] (per-token
// quantization repeats it over the blocks) and its sum of codes the sum of acts.sum over the blocks.
class TermRun {
 public:
  TermRun(const LowRankInt8Term& lr, int32_t m, const CpuDispatch& d, TermScratch* s)
      : lr_(lr), m_(m), r4_(RoundUp(lr.r, 4)), d_(d) {
    dots_ = Sized(s->dots, (size_t)m * lr.r);
    wq_ = Sized(s->wq, (size_t)m * r4_);
    wsum_ = Sized(s->sum, (size_t)m);
    wscale_ = Sized(s->scale, (size_t)m);
    w_ = Sized(s->w, (size_t)m * lr.r);
    // A small term (a LoRA of rank 8 on a 4096-wide layer) stays on one thread: waking the pool
    // costs more than the work.
    threads_ = (double)m * lr.r * ((double)lr.k + lr.n) < (1 << 20) ? 1 : NumThreads();
    token_blocks_ = (m + 3) / 4;
    const int32_t groups = (lr.r + 3) / 4;
    c_chunks_ = (int32_t)std::clamp<int64_t>((4 * threads_ + token_blocks_ - 1) / token_blocks_, 1, groups);
  }
  int64_t dot_tasks() const { return threads_ == 1 ? 1 : (int64_t)token_blocks_ * c_chunks_; }

  // Task i: a block of 4 tokens and a chunk of rank components (all of them on one thread).
  void Dots(int64_t task, const QuantizedActs& acts) const {
    const int32_t groups = (lr_.r + 3) / 4;
    const int32_t tb0 = threads_ == 1 ? 0 : (int32_t)(task / c_chunks_), tb1 = threads_ == 1 ? token_blocks_ : tb0 + 1;
    const int32_t cc = threads_ == 1 ? 0 : (int32_t)(task % c_chunks_), chunks = threads_ == 1 ? 1 : c_chunks_;
    const int32_t c0 = 4 * (int32_t)((int64_t)groups * cc / chunks);
    const int32_t c1 = std::min(lr_.r, 4 * (int32_t)((int64_t)groups * (cc + 1) / chunks));
    if (c1 <= c0) return;
    for (int32_t tb = tb0; tb < tb1; ++tb) DotsBlock(4 * tb, std::min(m_, 4 * tb + 4), c0, c1, acts);
  }

  // Prefill runs the term inside the GEMM's two rounds instead (RowsQuantized, TileWritten: no third
  // round, no second pass over y) where every thread gets a quantizing task and the tiles are tall
  // enough to keep a slice of V busy; decode keeps Dots' finer split over rank components.
  bool InTiles() const { return m_ >= 16 && (m_ + w4a8k::kQuantRows - 1) / w4a8k::kQuantRows >= NumThreads(); }

  // Tokens [t0, t1) just quantized, still in cache: their dots and requantized intermediate.
  void RowsQuantized(int32_t t0, int32_t t1, const QuantizedActs& acts) const {
    for (int32_t t = t0; t < t1; t += 4) DotsBlock(t, std::min(t1, t + 4), 0, lr_.r, acts);
    Requantize(acts, t0, t1);
  }

  // y's block [t0, t1) x [j0, j1), just written by the GEMM (bias included), += w V: the same fma per
  // element as Finish, on the block while it is in cache.
  void TileWritten(int32_t t0, int32_t t1, int32_t j0, int32_t j1, float* y) const {
    if (t1 > t0 && j1 > j0)
      d_.int8_rows_add(t1 - t0, j1 - j0, lr_.r, wq_ + (size_t)t0 * r4_, r4_, wsum_ + t0, lr_.v + j0, lr_.n, wscale_ + t0,
                       y + (size_t)t0 * lr_.n + j0, lr_.n);
  }

  // w = the dots scaled (fp32, fixed order), requantized per token; then y += w V on the pool.
  void Finish(const QuantizedActs& acts, float* y) {
    // Tasks: a strip of 64-column multiples for at most 16 tokens (the kernel keeps slices of V in
    // cache while its tokens pass). Where each task owns its tokens whole (j_chunks == 1, prefill),
    // it requantizes them itself; otherwise (few tokens) this thread does it first.
    const int32_t n = lr_.n, strips = (n + 63) / 64;
    const int32_t t_chunks = threads_ == 1 ? 1 : (m_ + 15) / 16;
    const int32_t j_chunks = threads_ == 1 ? 1 : (int32_t)std::clamp<int64_t>((4 * threads_ + t_chunks - 1) / t_chunks, 1, strips);
    if (j_chunks > 1) Requantize(acts, 0, m_);
    ParallelFor((int64_t)t_chunks * j_chunks, [this, &acts, y, n, strips, t_chunks, j_chunks](int64_t task) {
      const int32_t tc = (int32_t)(task / j_chunks), jc = (int32_t)(task % j_chunks);
      const int32_t t0 = (int32_t)((int64_t)m_ * tc / t_chunks), t1 = (int32_t)((int64_t)m_ * (tc + 1) / t_chunks);
      const int32_t j0 = std::min(n, (int32_t)((int64_t)strips * jc / j_chunks) * 64);
      const int32_t j1 = std::min(n, (int32_t)((int64_t)strips * (jc + 1) / j_chunks) * 64);
      if (j_chunks == 1) Requantize(acts, t0, t1);
      if (t1 > t0 && j1 > j0)
        d_.int8_rows_add(t1 - t0, j1 - j0, lr_.r, wq_ + (size_t)t0 * r4_, r4_, wsum_ + t0, lr_.v + j0, n, wscale_ + t0,
                         y + (size_t)t0 * n + j0, n);
    });
  }

  // Tokens [t0, t1) (at most 4): dots with rank components [c0, c1).
  void DotsBlock(int32_t t0, int32_t t1, int32_t c0, int32_t c1, const QuantizedActs& acts) const {
    int32_t xsum[4];
    for (int32_t t = t0; t < t1; ++t) {
      int32_t sum = 0;
      for (int32_t b = 0; b < acts.blocks; ++b) sum += acts.sum[(size_t)t * acts.blocks + b];
      xsum[t - t0] = sum;
    }
    d_.int8_dots(t1 - t0, c1 - c0, lr_.k, acts.q + (size_t)t0 * acts.k_padded, acts.k_padded, xsum,
                 lr_.ut + (size_t)c0 * lr_.k, lr_.k, dots_ + (size_t)t0 * lr_.r + c0, lr_.r);
  }

  // Tokens [t0, t1): w = the dots scaled (fp32, left to right), then quantized per token to int8.
  void Requantize(const QuantizedActs& acts, int32_t t0, int32_t t1) const {
    const int32_t r = lr_.r;
    for (int32_t t = t0; t < t1; ++t) {
      const float sx = acts.scale[(size_t)t * acts.blocks];
      float* w = w_ + (size_t)t * r;
      float amax = 0.f;
      for (int32_t c = 0; c < r; ++c) {
        w[c] = (float)dots_[(size_t)t * r + c] * sx * lr_.us[c] * lr_.vs[c];
        amax = AbsMaxStep(amax, w[c]);
      }
      const TokenScale ts = MakeTokenScale(amax, kInt8Max);
      int8_t* q = wq_ + (size_t)t * r4_;
      int32_t sum = 0;
      for (int32_t c = 0; c < r; ++c) sum += q[c] = QuantizeInt8(w[c], ts.inverse);
      for (int32_t c = r; c < r4_; ++c) q[c] = 0;
      wsum_[t] = sum;
      wscale_[t] = ts.scale;
    }
  }

 private:
  LowRankInt8Term lr_;
  int32_t m_, r4_;
  const CpuDispatch& d_;
  int32_t* dots_;
  int8_t* wq_;
  int32_t* wsum_;
  float* wscale_;
  float* w_;
  int64_t threads_;
  int32_t token_blocks_, c_chunks_;
};

Status StandaloneImpl(const LowRankInt8Term& lr, int32_t m, const float* x, float* y, Isa isa) {
  const CpuDispatch& d = DispatchFor(isa);
  // Per-token int8 activations as GemmW4A8 makes them (cpu_kernels.h), in 64-wide blocks.
  constexpr int32_t kBlock = 64;
  const int32_t k_padded = RoundUp(lr.k, kBlock), blocks = k_padded / kBlock;
  ScratchLease lease((size_t)m * (k_padded + 13 * lr.r + 16 + 8 * blocks));
  TermScratch* s = lease.s;
  const QuantizedActs acts{m, m, k_padded, blocks, Sized(s->xq, (size_t)m * k_padded), Sized(s->x_scale, (size_t)m * blocks),
                           Sized(s->x_sum, (size_t)m * blocks)};
  ParallelFor((m + w4a8k::kQuantRows - 1) / w4a8k::kQuantRows, [&](int64_t i) {
    const int32_t m0 = (int32_t)i * w4a8k::kQuantRows, m1 = std::min(m, m0 + w4a8k::kQuantRows);
    d.quantize_rows(x, lr.k, kBlock, ActQuant::kPerToken, m0, m1, acts);
  });
  TermRun run(lr, m, d, s);
  ParallelFor(run.dot_tasks(), [&](int64_t i) { run.Dots(i, acts); });
  run.Finish(acts, y);
  return Status::kOk;
}

}  // namespace

void kron::Int8DotsScalar(int32_t m, int32_t r, int32_t k, const int8_t* a, int32_t lda, const int32_t*, const int8_t* f,
                          int32_t ldf, int32_t* out, int32_t ldo) {
  for (int32_t t = 0; t < m; ++t)
    for (int32_t c = 0; c < r; ++c) {
      int32_t s = 0;
      for (int32_t i = 0; i < k; ++i) s += (int32_t)a[(size_t)t * lda + i] * f[(size_t)c * ldf + i];
      out[(size_t)t * ldo + c] = s;
    }
}

void kron::Int8RowsAddScalar(int32_t m, int32_t cols, int32_t r, const int8_t* a, int32_t lda, const int32_t*,
                             const int8_t* f, int32_t ldf, const float* scale, float* y, int32_t ldy) {
  std::vector<int32_t> acc((size_t)cols);
  for (int32_t t = 0; t < m; ++t) {
    std::fill(acc.begin(), acc.end(), 0);
    for (int32_t c = 0; c < r; ++c) {
      const int32_t w = a[(size_t)t * lda + c];
      for (int32_t j = 0; j < cols; ++j) acc[j] += w * f[(size_t)c * ldf + j];
    }
    for (int32_t j = 0; j < cols; ++j) y[(size_t)t * ldy + j] = std::fma(scale[t], (float)acc[j], y[(size_t)t * ldy + j]);
  }
}

Status QuantizeInt8Rows(const float* src, int32_t rows, int32_t cols, int8_t* q, float* scales) {
  if (!src || !q || !scales || rows < 1 || cols < 1) return Status::kInvalidArgument;
  for (int32_t i = 0; i < rows; ++i) {
    const float* row = src + (size_t)i * cols;
    float amax = 0.f;
    for (int32_t j = 0; j < cols; ++j) {
      if (!std::isfinite(row[j])) return Status::kNumericalError;
      amax = AbsMaxStep(amax, row[j]);
    }
    const TokenScale s = MakeTokenScale(amax, kInt8Max);
    scales[i] = s.scale;
    for (int32_t j = 0; j < cols; ++j) q[(size_t)i * cols + j] = QuantizeInt8(row[j], s.inverse);
  }
  return Status::kOk;
}

Status LowRankAddInt8(const LowRankInt8Term& lr, int32_t m, const float* x, float* y, Isa isa) {
  if (!Valid(lr) || m < 1 || !x || !y) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  try {
    return StandaloneImpl(lr, m, x, y, isa);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
}

Status GemmW4A8LowRankInt8(const PackedWeight& w, const LowRankInt8Term& lr, const GemmArgs& a) {
  if (!Valid(lr) || lr.k != w.k() || lr.n != w.n()) return Status::kInvalidArgument;
  // Per-group activation scales are not the term's per-token ones: the term quantizes on its own.
  if (a.act != ActQuant::kPerToken) {
    const Status s = GemmW4A8(w, a);
    return s == Status::kOk ? LowRankAddInt8(lr, a.m, a.x, a.y, w.isa()) : s;
  }
  if (a.m < 1) return GemmW4A8(w, a);  // the GEMM's own refusal
  try {
    ScratchLease lease((size_t)a.m * (13 * lr.r + 16));
    TermRun run(lr, a.m, DispatchFor(w.isa()), lease.s);
    w4a8k::GemmSideWork side;
    if (run.InTiles()) {
      side.rows_quantized = [&](int32_t t0, int32_t t1, const QuantizedActs& acts) { run.RowsQuantized(t0, t1, acts); };
      side.tile_written = [&](int32_t t0, int32_t t1, int32_t j0, int32_t j1) { run.TileWritten(t0, t1, j0, j1, a.y); };
    } else {
      side.tasks = run.dot_tasks();
      side.run = [&](int64_t i, const QuantizedActs& acts) { run.Dots(i, acts); };
      side.after = [&](const QuantizedActs& acts) {
        run.Finish(acts, a.y);
        return Status::kOk;
      };
    }
    return w4a8k::GemmW4A8WithSideWork(w, w.isa(), a, side);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
}

Status LowRankAddInt8Reference(const LowRankInt8Term& lr, int32_t m, const float* x, float* y) {
  if (!Valid(lr) || m < 1 || !x || !y) return Status::kInvalidArgument;
  const int32_t k = lr.k, r = lr.r, n = lr.n;
  std::vector<int8_t> xq((size_t)k), wq((size_t)r);
  std::vector<float> w((size_t)r);
  for (int32_t t = 0; t < m; ++t) {
    const float* xt = x + (size_t)t * k;
    float amax = 0.f;
    for (int32_t i = 0; i < k; ++i) amax = AbsMaxStep(amax, xt[i]);
    const TokenScale xs = MakeTokenScale(amax, kInt8Max);
    for (int32_t i = 0; i < k; ++i) xq[i] = QuantizeInt8(xt[i], xs.inverse);
    float wmax = 0.f;
    for (int32_t c = 0; c < r; ++c) {
      int64_t dot = 0;
      for (int32_t i = 0; i < k; ++i) dot += (int64_t)xq[i] * lr.ut[(size_t)c * k + i];
      w[c] = (float)dot * xs.scale * lr.us[c] * lr.vs[c];
      wmax = AbsMaxStep(wmax, w[c]);
    }
    const TokenScale ws = MakeTokenScale(wmax, kInt8Max);
    for (int32_t c = 0; c < r; ++c) wq[c] = QuantizeInt8(w[c], ws.inverse);
    float* yt = y + (size_t)t * n;
    for (int32_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (int32_t c = 0; c < r; ++c) acc += (int64_t)wq[c] * lr.v[(size_t)c * n + j];
      yt[j] = std::fma(ws.scale, (float)acc, yt[j]);
    }
  }
  return Status::kOk;
}

}  // namespace w4a8::cpu
