// CachedAttention and RmsNorm (decoder_ops.h): the fused decoder steps of `--format w4a8`, their
// double-precision reference, and the scalar building blocks (attention_internal.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_internal.h"
#include "cpu/dispatch.h"
#include "thread_pool.h"
#include "w4a8/decoder_ops.h"

namespace w4a8::cpu {

float attention::DotScalar(const float* a, const float* b, int32_t n) {
  float s = 0.0f;
  for (int32_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void attention::AxpyScalar(float* y, float s, const float* x, int32_t n) {
  for (int32_t i = 0; i < n; ++i) y[i] += s * x[i];
}

void attention::ScoresScalar(const float* q, int32_t rows, const float* keys, int64_t cols, int32_t hs, float* scores,
                             int64_t ld) {
  for (int32_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) scores[r * ld + j] = DotScalar(q + (int64_t)r * hs, keys + j * hs, hs);
}

void attention::ContextScalar(const float* p, int32_t rows, int64_t ldp, const float* values, int64_t cols, int32_t hs,
                              float* out, int64_t ldo) {
  for (int32_t r = 0; r < rows; ++r) {
    float* o = out + r * ldo;
    std::fill(o, o + hs, 0.0f);
    for (int64_t j = 0; j < cols; ++j) AxpyScalar(o, p[r * ldp + j], values + j * hs, hs);
  }
}

float attention::ExpShiftSumScalar(float* x, int32_t n, float shift) {
  float sum = 0.0f;
  for (int32_t i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}

void attention::SiluMulScalar(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * up[i] / (1.0f + std::exp(-gate[i]));
}

namespace {

bool ValidAttention(const AttentionArgs& a) {
  if (a.batch < 1 || a.seq < 1 || a.past < 0 || a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0 ||
      a.head_size < 2 || a.head_size % 2 != 0 || a.rope_rows < 1 || !std::isfinite(a.scale))
    return false;
  if ((int64_t)a.past + a.seq > INT32_MAX) return false;
  if (a.q_stride < (int64_t)a.heads * a.head_size || a.kv_stride < (int64_t)a.kv_heads * a.head_size) return false;
  if (!a.q || !a.k || !a.v || !a.mask || !a.positions || !a.cos || !a.sin || !a.out || !a.present_k || !a.present_v)
    return false;
  if (a.past > 0 && (!a.past_k || !a.past_v)) return false;
  if (a.capacity < 0 || (a.capacity > 0 && ((int64_t)a.past + a.seq > a.capacity || !a.past_k || !a.past_v))) return false;
  for (int64_t i = 0; i < (int64_t)a.batch * a.seq; ++i)
    if (a.positions[i] < 0 || a.positions[i] >= a.rope_rows) return false;
  return true;
}

// Rotates the pairs of one head's row by its position's angles: pair i is (2i, 2i + 1) when
// interleaved, else (i, i + half).
template <typename T>
void Rotate(const float* x, const float* cos, const float* sin, int32_t half, bool interleaved, T* out) {
  const int32_t step = interleaved ? 2 : 1, other = interleaved ? 1 : half;
  for (int32_t i = 0; i < half; ++i) {
    const int32_t j = i * step;
    const T e = x[j], o = x[j + other], c = cos[i], s = sin[i];
    out[j] = e * c - o * s;
    out[j + other] = e * s + o * c;
  }
}

// Rows per (batch, kv head) of present (and, with a capacity, of past).
int64_t SlabRows(const AttentionArgs& a) { return a.capacity > 0 ? a.capacity : (int64_t)a.past + a.seq; }

// The past rows, then the new tokens' (rotated) keys and values, per (batch, kv head). A shared
// buffer (present aliasing past) keeps its rows: only the new ones are written.
void WriteCache(const AttentionArgs& a, int64_t task) {
  const int32_t b = (int32_t)(task / a.kv_heads), g = (int32_t)(task % a.kv_heads), hs = a.head_size, half = hs / 2;
  const int64_t slab = SlabRows(a);
  const size_t row = (size_t)hs * sizeof(float);
  float* pk = a.present_k + ((int64_t)b * a.kv_heads + g) * slab * hs;
  float* pv = a.present_v + ((int64_t)b * a.kv_heads + g) * slab * hs;
  if (a.capacity > 0) {
    if (a.present_k != a.past_k) std::memcpy(pk, a.past_k + ((int64_t)b * a.kv_heads + g) * slab * hs, (size_t)slab * row);
    if (a.present_v != a.past_v) std::memcpy(pv, a.past_v + ((int64_t)b * a.kv_heads + g) * slab * hs, (size_t)slab * row);
  } else if (a.past > 0) {
    const int64_t from = ((int64_t)b * a.kv_heads + g) * a.past * hs;
    std::memcpy(pk, a.past_k + from, (size_t)a.past * row);
    std::memcpy(pv, a.past_v + from, (size_t)a.past * row);
  }
  for (int32_t s = 0; s < a.seq; ++s) {
    const int64_t src = ((int64_t)b * a.seq + s) * a.kv_stride + (int64_t)g * hs;
    const int64_t pos = a.positions[(int64_t)b * a.seq + s];
    Rotate<float>(a.k + src, a.cos + pos * half, a.sin + pos * half, half, a.rotary_interleaved, pk + (a.past + s) * (int64_t)hs);
    std::memcpy(pv + (a.past + s) * (int64_t)hs, a.v + src, row);
  }
}

}  // namespace

Status CachedAttention(const AttentionArgs& a, Isa isa) {
  if (!ValidAttention(a)) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const CpuDispatch& d = DispatchFor(isa);
  const attention::DotFn dot = d.attn_dot;
  const attention::AxpyFn axpy = d.attn_axpy;
  const int32_t hs = a.head_size, half = hs / 2, group = a.heads / a.kv_heads;
  const int64_t total = (int64_t)a.past + a.seq;
  if (total > INT32_MAX / 2) return Status::kInvalidArgument;
  const int64_t slab = SlabRows(a);

  // A decode step writes one row per kv head (a few KiB): cheaper here than waking a thread, which
  // costs more than the copy when the session's threads sleep between ops.
  const bool copies_past = a.capacity > 0 ? a.present_k != a.past_k : a.past > 0;
  const int64_t rows_written = (int64_t)a.batch * a.kv_heads * (copies_past ? slab : a.seq);
  if (rows_written * hs < (1 << 15)) {
    for (int64_t t = 0; t < (int64_t)a.batch * a.kv_heads; ++t) WriteCache(a, t);
  } else {
    ParallelFor((int64_t)a.batch * a.kv_heads, [&](int64_t task) { WriteCache(a, task); });
  }

  // One task per (batch, kv head, block of queries), holding the `group` query heads that read that kv
  // head as rows [head in group][query]: each key and value row is read once for all of them. A decode
  // step (one query per head; 8 heads per kv head for tinyllama) takes the scores and context kernels,
  // which read the cache in place in tiles of rows; a prompt's blocks of >= kGemmRows rows take two small
  // GEMMs (whose packing pays off over many queries); fewer rows the dots and scaled adds.
  constexpr int32_t kRowsPerTask = 64, kGemmRows = 4;
  const int32_t block_q = std::max<int32_t>(1, kRowsPerTask / group);
  const int64_t blocks = (a.seq + block_q - 1) / block_q;
  const attention::ExpShiftSumFn exp_sum = d.exp_shift_sum;
  const GemmF32Fn gemm = d.linalg.gemm_f32;
  const attention::ScoresFn scores_of = d.attn_scores;
  const attention::ContextFn context_of = d.attn_context;
  const int64_t out_stride = (int64_t)a.heads * hs;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const auto run_task = [&](int64_t task) {
    const int32_t blk = (int32_t)(task % blocks);
    const int32_t g = (int32_t)(task / blocks % a.kv_heads), b = (int32_t)(task / blocks / a.kv_heads);
    const float* keys = a.present_k + ((int64_t)b * a.kv_heads + g) * slab * hs;
    const float* values = a.present_v + ((int64_t)b * a.kv_heads + g) * slab * hs;
    const int64_t* mask = a.mask + (int64_t)b * total;
    const int32_t s0 = blk * block_q, s1 = std::min(a.seq, s0 + block_q), nq = s1 - s0, rows = group * nq;
    const int64_t cols = a.past + s1;  // keys the block's last query sees
    thread_local std::vector<float> scores, qrot, ctx;
    scores.resize((size_t)rows * cols);
    qrot.resize((size_t)rows * hs);
    // Row r is query s0 + r % nq of head g * group + r / nq; its output goes to out[b, s0 + r % nq, head].
    const auto out_row = [&](int32_t r) {
      return a.out + ((int64_t)b * a.seq + s0 + r % nq) * out_stride + ((int64_t)g * group + r / nq) * hs;
    };
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t h = g * group + r / nq, s = s0 + r % nq;
      const int64_t pos = a.positions[(int64_t)b * a.seq + s];
      float* qr = qrot.data() + (size_t)r * hs;
      Rotate<float>(a.q + ((int64_t)b * a.seq + s) * a.q_stride + (int64_t)h * hs, a.cos + pos * half, a.sin + pos * half, half, a.rotary_interleaved, qr);
      for (int32_t c = 0; c < hs; ++c) qr[c] *= a.scale;
    }
    const bool gemm_path = rows >= kGemmRows;
    // One query per head (a decode step): the scores straight from the keys, no transposed panels.
    const bool scored = gemm_path || nq == 1;
    if (nq == 1) {
      scores_of(qrot.data(), rows, keys, cols, hs, scores.data(), cols);
    } else if (gemm_path) {
      gemm(false, true, rows, cols, hs, 1.0f, qrot.data(), hs, keys, hs, 0.0f, scores.data(), cols, 1);
    }
    for (int32_t r = 0; r < rows; ++r) {
      float* row = scores.data() + (size_t)r * cols;
      const int64_t visible = a.past + s0 + r % nq + 1;
      float max = kNegInf;
      for (int64_t j = 0; j < cols; ++j) {
        if (j >= visible || mask[j] == 0) {
          row[j] = kNegInf;
          continue;
        }
        if (!scored) row[j] = dot(qrot.data() + (size_t)r * hs, keys + j * hs, hs);
        max = std::max(max, row[j]);
      }
      if (max == kNegInf) {  // no key visible (padding): zeros
        std::fill(row, row + cols, 0.0f);
        continue;
      }
      const float inv = 1.0f / exp_sum(row, (int32_t)cols, max);
      for (int64_t j = 0; j < cols; ++j) row[j] *= inv;
    }
    if (nq == 1) {  // rows are the group's heads, hs apart in out
      context_of(scores.data(), rows, cols, values, cols, hs, out_row(0), hs);
      return;
    }
    if (gemm_path) {
      // Rows of one head are out_stride apart in out, heads hs apart: the GEMM writes a dense block,
      // copied out row by row.
      ctx.resize((size_t)rows * hs);
      gemm(false, false, rows, hs, cols, 1.0f, scores.data(), cols, values, hs, 0.0f, ctx.data(), hs, 1);
      for (int32_t r = 0; r < rows; ++r) std::memcpy(out_row(r), ctx.data() + (size_t)r * hs, (size_t)hs * sizeof(float));
      return;
    }
    for (int32_t r = 0; r < rows; ++r) {
      float* out = out_row(r);
      std::fill(out, out + hs, 0.0f);
      const float* row = scores.data() + (size_t)r * cols;
      for (int64_t j = 0; j < cols; ++j)
        if (row[j] != 0.0f) axpy(out, row[j], values + j * hs, hs);
    }
  };
  ParallelFor((int64_t)a.batch * a.kv_heads * blocks, run_task);
  return Status::kOk;
}

Status CachedAttentionReference(const AttentionArgs& a) {
  if (!ValidAttention(a)) return Status::kInvalidArgument;
  const int32_t hs = a.head_size, half = hs / 2, group = a.heads / a.kv_heads;
  const int64_t total = (int64_t)a.past + a.seq, slab = SlabRows(a);
  for (int64_t t = 0; t < (int64_t)a.batch * a.kv_heads; ++t) WriteCache(a, t);
  std::vector<double> q(hs), w(total), o(hs);
  for (int32_t b = 0; b < a.batch; ++b)
    for (int32_t h = 0; h < a.heads; ++h)
      for (int32_t s = 0; s < a.seq; ++s) {
        const int64_t pos = a.positions[(int64_t)b * a.seq + s];
        Rotate<double>(a.q + ((int64_t)b * a.seq + s) * a.q_stride + (int64_t)h * hs, a.cos + pos * half, a.sin + pos * half, half, a.rotary_interleaved, q.data());
        const float* keys = a.present_k + ((int64_t)b * a.kv_heads + h / group) * slab * hs;
        const float* values = a.present_v + ((int64_t)b * a.kv_heads + h / group) * slab * hs;
        double max = -std::numeric_limits<double>::infinity(), sum = 0.0;
        for (int64_t j = 0; j <= a.past + s; ++j) {
          w[j] = -std::numeric_limits<double>::infinity();
          if (a.mask[(int64_t)b * total + j] == 0) continue;
          double d = 0.0;
          for (int32_t i = 0; i < hs; ++i) d += q[i] * keys[j * hs + i];
          w[j] = d * a.scale;
          max = std::max(max, w[j]);
        }
        std::fill(o.begin(), o.end(), 0.0);
        if (max != -std::numeric_limits<double>::infinity()) {
          for (int64_t j = 0; j <= a.past + s; ++j) {
            if (w[j] == -std::numeric_limits<double>::infinity()) continue;
            const double p = std::exp(w[j] - max);
            sum += p;
            for (int32_t i = 0; i < hs; ++i) o[i] += p * values[j * hs + i];
          }
          for (double& x : o) x /= sum;
        }
        float* out = a.out + ((int64_t)b * a.seq + s) * ((int64_t)a.heads * hs) + (int64_t)h * hs;
        for (int32_t i = 0; i < hs; ++i) out[i] = (float)o[i];
      }
  return Status::kOk;
}

Status SwiGlu(const float* y, int64_t rows, int32_t f, float* out, Isa isa) {
  if (!y || !out || rows < 0 || f < 1) return Status::kInvalidArgument;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  const attention::SiluMulFn silu_mul = DispatchFor(isa).silu_mul;
  for (int64_t r = 0; r < rows; ++r) silu_mul(y + r * 2 * (int64_t)f, y + r * 2 * (int64_t)f + f, out + r * f, f);
  return Status::kOk;
}

Status RmsNorm(const float* x, const float* residual, const float* weight, int64_t rows, int32_t dim, float eps,
               float* y, float* sum_out) {
  if (!x || !weight || !y || rows < 0 || dim < 1 || !(eps >= 0.0f) || !std::isfinite(eps)) return Status::kInvalidArgument;
  const auto row = [&](int64_t r) {
    const float* xr = x + r * dim;
    const float* rr = residual ? residual + r * dim : nullptr;
    float* yr = y + r * dim;
    float* sr = sum_out ? sum_out + r * dim : nullptr;
    double ss = 0.0;
    for (int32_t i = 0; i < dim; ++i) {
      const float v = rr ? xr[i] + rr[i] : xr[i];
      if (sr) sr[i] = v;
      ss += (double)v * v;
    }
    const float inv = (float)(1.0 / std::sqrt(ss / dim + eps));
    for (int32_t i = 0; i < dim; ++i) yr[i] = (rr ? xr[i] + rr[i] : xr[i]) * inv * weight[i];
  };
  // A decode step's one row is cheaper than waking a thread.
  if (rows * (int64_t)dim < (1 << 16)) {
    for (int64_t r = 0; r < rows; ++r) row(r);
  } else {
    ParallelFor(rows, row);
  }
  return Status::kOk;
}

}  // namespace w4a8::cpu
