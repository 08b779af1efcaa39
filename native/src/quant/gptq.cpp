// GPTQ on W[K][N]: the reference algorithm works on W^T (rows = outputs), quantizing one input
// column at a time; in our [K][N] layout an input "column" is a contiguous row of W, so the
// per-column error propagation is a row axpy, and everything inside a block is independent per
// output channel (threads split N). The lazy block update is one GEMM with U's off-diagonal panel.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <mutex>
#include <numeric>
#include <type_traits>
#include <vector>

#include "linalg/parallel.h"
#include "quant/group_codec.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {
namespace {

// Group parameters per output channel from rows [r0, r1) of w (leading dimension n), columns [j0, j1):
// from the range, or by the MSE clip search (row_weight: per-row error weights indexed by row, or null).
void RangeParams(const float* w, int32_t n, int32_t r0, int32_t r1, int32_t j0, int32_t j1,
                 const WeightQuantConfig& cfg, const GptqConfig& gptq, const double* row_weight,
                 quant::GroupParams* out /* indexed by j */) {
  if (gptq.clip_grid > 1) {
    std::vector<float> weight;
    if (row_weight) weight.assign(row_weight + r0, row_weight + r1);
    for (int32_t j = j0; j < j1; ++j)
      out[j] = quant::MseClipParams(w + (size_t)r0 * n + j, n, r1 - r0, row_weight ? weight.data() : nullptr, cfg,
                                    gptq.clip_grid, gptq.clip_min);
    return;
  }
  for (int32_t j = j0; j < j1; ++j) {
    float lo = w[(size_t)r0 * n + j], hi = lo;
    for (int32_t r = r0 + 1; r < r1; ++r) {
      lo = std::min(lo, w[(size_t)r * n + j]);
      hi = std::max(hi, w[(size_t)r * n + j]);
    }
    out[j] = quant::ParamsFromRange(lo, hi, cfg, cfg.clip_ratio);
  }
}

}  // namespace

// H may be fp64 or fp32 (a K = 11008 Hessian is 1 GB in fp64): it is only read, widened, into U.
template <typename HT>
static Status GptqQuantizeUnguarded(const float* w, int32_t k, int32_t n, const HT* hessian, const WeightQuantConfig& cfg,
                                    const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads) {
  if (CheckWeightQuantConfig(cfg) != Status::kOk) return Status::kInvalidArgument;
  if (k <= 0 || n <= 0 || !w || !hessian || !out.codes || !out.scales || gptq.block_size < 1 || !(gptq.damp >= 0))
    return Status::kInvalidArgument;
  if (HasZeroPoints(cfg) && !out.zero_points) return Status::kInvalidArgument;
  if (gptq.clip_grid < 1 || !(gptq.clip_min > 0 && gptq.clip_min <= 1)) return Status::kInvalidArgument;
  const int t = ChunkCount(threads);
  const size_t kn = (size_t)k * n, kk = (size_t)k * k;
  for (size_t i = 0; i < kn; ++i)
    if (!std::isfinite(w[i])) return Status::kNumericalError;
  for (size_t i = 0; i < kk; ++i)
    if (!std::isfinite(hessian[i])) return Status::kNumericalError;

  // Permutation (act order: descending H_kk, stable) and the permuted working copies.
  std::vector<int32_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  if (gptq.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int32_t a, int32_t b) { return hessian[(size_t)a * k + a] > hessian[(size_t)b * k + b]; });
  // Dead inputs (H_kk = 0) in permuted order; H itself is only read when U is built.
  std::vector<char> dead_row(k, 0);
  double mean_diag = 0;
  for (int32_t r = 0; r < k; ++r) {
    const double d = hessian[(size_t)perm[r] * k + perm[r]];
    dead_row[r] = d == 0;
    mean_diag += d == 0 ? 1.0 : d;
  }
  mean_diag /= k;
  // The clip search's error weight per input row (original order): E[x_r^2] = H_rr.
  std::vector<double> hdiag;
  if (gptq.clip_h_weighted) {
    hdiag.resize(k);
    for (int32_t r = 0; r < k; ++r) hdiag[r] = hessian[(size_t)r * k + r];
  }
  const double* row_weight = hdiag.empty() ? nullptr : hdiag.data();
  std::vector<float> wp(kn);
  int32_t dead = 0;
  for (int32_t r = 0; r < k; ++r) {
    const bool is_dead = dead_row[r];
    dead += is_dead;
    const float* src = w + (size_t)perm[r] * n;
    float* dst = wp.data() + (size_t)r * n;
    if (is_dead) std::fill(dst, dst + n, 0.0f);
    else std::copy(src, src + n, dst);
  }

  // Static group parameters (act order, or one group per channel): from the original weights.
  const int32_t g = cfg.group_size > 0 ? cfg.group_size : k;
  const int32_t blocks = (k + g - 1) / g;
  // Groups along N (AdaDim's layout): the parameters of input row r come from that row when it is
  // reached, i.e. after the errors of every earlier row were compensated into it.
  const bool along_n = cfg.grouping == Grouping::kAlongN;
  const int32_t gn = cfg.group_size > 0 ? cfg.group_size : n;
  const int32_t row_blocks = (n + gn - 1) / gn;
  std::vector<quant::GroupParams> row_params(along_n ? (size_t)k * row_blocks : 0);  // [orig row][block]
  const bool static_groups = !along_n && (gptq.act_order || cfg.group_size == 0);
  std::vector<quant::GroupParams> params((size_t)blocks * n);  // [block][n]
  if (static_groups) {
    std::vector<float> orig(kn);  // original order, dead rows zeroed
    for (int32_t r = 0; r < k; ++r) std::copy(wp.data() + (size_t)r * n, wp.data() + (size_t)(r + 1) * n, orig.data() + (size_t)perm[r] * n);
    for (int32_t b = 0; b < blocks; ++b)
      RangeParams(orig.data(), n, b * g, std::min(k, (b + 1) * g), 0, n, cfg, gptq, row_weight, params.data() + (size_t)b * n);
  }

  // U: upper Cholesky factor of (H + damp * mean(diag) I)^-1 (dead diagonals set to 1), retried
  // with more dampening.
  // U is factored in fp64 and used in fp32: it is narrowed in place (float i lands in bytes of
  // double i/2, already read) and the buffer shrunk with realloc, so fp64 and fp32 copies never
  // coexist (K = 11008: 0.97 GB + 0.48 GB otherwise).
  // With factor_f32 (the largest Hessians) U is built and factored in fp32 from the start: one
  // K x K fp32 buffer (0.48 GB at K = 11008) instead of 0.97 GB of fp64, as the reference GPTQ does.
  double damp = gptq.damp;
  const size_t elem = gptq.factor_f32 ? sizeof(float) : sizeof(double);
  std::unique_ptr<void, void (*)(void*)> ubuf(std::malloc(kk * elem), std::free);
  if (!ubuf) throw std::bad_alloc();
  auto factor = [&](auto* u) {
    using UT = std::remove_pointer_t<decltype(u)>;
    Status st = Status::kNumericalError;
    for (int attempt = 0; attempt < 4; ++attempt, damp = damp > 0 ? damp * 10 : 1e-6) {
      for (int32_t r = 0; r < k; ++r) {
        const HT* src = hessian + (size_t)perm[r] * k;
        UT* dst = u + (size_t)r * k;
        for (int32_t c = 0; c < k; ++c) dst[c] = (UT)src[perm[c]];
        double diag = dead_row[r] ? 1.0 : (double)src[perm[r]];
        dst[r] = (UT)(diag + damp * mean_diag);
      }
      st = UpperCholeskyOfInverse(u, k, u, t);
      if (st == Status::kOk) break;
    }
    return st;
  };
  if (gptq.factor_f32) {
    const Status st = factor(static_cast<float*>(ubuf.get()));
    if (st != Status::kOk) return st;
  } else {
    double* u = static_cast<double*>(ubuf.get());
    const Status st = factor(u);
    if (st != Status::kOk) return st;
    char* bytes = static_cast<char*>(ubuf.get());
    for (size_t i = 0; i < kk; ++i) {
      const float f = (float)u[i];
      std::memcpy(bytes + i * sizeof(float), &f, sizeof(float));
    }
    if (void* shrunk = std::realloc(ubuf.get(), kk * sizeof(float))) {
      ubuf.release();
      ubuf.reset(shrunk);
    }
  }
  const float* uf = static_cast<const float*>(ubuf.get());

  std::vector<uint8_t> codes(kn);  // one code per byte, original row order
  std::vector<float> deq(out.dequantized ? 0 : kn);
  float* deq_out = out.dequantized ? out.dequantized : deq.data();
  // Dynamic groups along K must not straddle a lazy block, or part of a group would be measured
  // before this block's updates reach it: round the block up to whole groups.
  const int32_t bs = (!static_groups && !along_n) ? ((gptq.block_size + g - 1) / g) * g : gptq.block_size;
  std::vector<float> err((size_t)bs * n);
  double loss = 0;
  std::mutex loss_mutex;
  for (int32_t i1 = 0; i1 < k; i1 += bs) {
    const int32_t i2 = std::min(k, i1 + bs), count = i2 - i1;
    // Inside the block every output channel is independent: split N (whole groups along N).
    ParallelRanges(t, n, along_n ? gn : 16, [&](int64_t j0l, int64_t j1l) {
      const int32_t j0 = (int32_t)j0l, j1 = (int32_t)j1l;
      double local = 0;
      for (int32_t i = 0; i < count; ++i) {
        const int32_t r = i1 + i, orig = perm[r];
        float* row = wp.data() + (size_t)r * n;
        if (along_n) {
          for (int32_t b = j0 / gn; b * gn < j1; ++b) {
            const int32_t b0 = b * gn, b1 = std::min(n, b0 + gn);
            // One input row: the Hessian weight is the same for every element, so the search is unweighted.
            row_params[(size_t)orig * row_blocks + b] =
                quant::MseClipParams(row + b0, 1, b1 - b0, nullptr, cfg, gptq.clip_grid, gptq.clip_min);
          }
        } else if (!static_groups && r % g == 0) {
          RangeParams(wp.data(), n, r, std::min(k, r + g), j0, j1, cfg, gptq, row_weight, params.data() + (size_t)(r / g) * n);
        }
        const quant::GroupParams* p = params.data() + (size_t)(orig / g) * n;
        const quant::GroupParams* rp = along_n ? row_params.data() + (size_t)orig * row_blocks : nullptr;
        float* e = err.data() + (size_t)i * n;
        const float d = uf[(size_t)r * k + r];
        for (int32_t j = j0; j < j1; ++j) {
          const quant::GroupParams& pj = along_n ? rp[j / gn] : p[j];
          const int c = quant::QuantizeCode(row[j], pj, cfg.format);
          const float q = quant::DequantizeCode(c, pj, cfg.format);
          codes[(size_t)orig * n + j] = (uint8_t)c;
          deq_out[(size_t)orig * n + j] = q;
          e[j] = (row[j] - q) / d;
          local += (double)e[j] * e[j];
        }
        for (int32_t ii = i + 1; ii < count; ++ii) {
          const float coef = uf[(size_t)r * k + i1 + ii];
          float* target = wp.data() + (size_t)(i1 + ii) * n;
          for (int32_t j = j0; j < j1; ++j) target[j] -= coef * e[j];
        }
      }
      std::lock_guard<std::mutex> lock(loss_mutex);
      loss += local;
    });
    if (i2 < k)  // W[i2:] -= U[i1:i2, i2:]^T E
      GemmF32(true, false, k - i2, n, count, -1.0f, uf + (size_t)i1 * k + i2, k, err.data(), n, 1.0f,
              wp.data() + (size_t)i2 * n, n, t);
  }

  if (along_n) {
    // One code per byte [K][N]; scales and zero points [K][blocks along N].
    memcpy(out.codes, codes.data(), kn);
    for (size_t i = 0; i < row_params.size(); ++i) {
      out.scales[i] = row_params[i].scale;
      if (out.zero_points) out.zero_points[i] = (uint8_t)row_params[i].zero_point;
    }
    if (result) {
      result->proxy_loss = loss / 2;
      result->damp_used = damp;
      result->dead_inputs = dead;
    }
    return Status::kOk;
  }
  // Canonical outputs.
  const int32_t layout_g = LayoutGroupSize(cfg, k);
  const int32_t layout_blocks = (k + layout_g - 1) / layout_g;
  const size_t row_nibbles = (size_t)layout_blocks * layout_g;
  memset(out.codes, 0, QuantCodeBytes(cfg, k, n));
  if (out.zero_points) memset(out.zero_points, 0, QuantZeroPointBytes(cfg, k, n));
  const size_t zp_row_bytes = (size_t)(layout_blocks + 1) / 2;
  for (int32_t j = 0; j < n; ++j) {
    for (int32_t lb = 0; lb < layout_blocks; ++lb) {
      const quant::GroupParams& p = params[(size_t)(((int64_t)lb * layout_g) / g) * n + j];
      out.scales[(size_t)j * layout_blocks + lb] = p.scale;
      if (out.zero_points) quant::SetNibble(out.zero_points + (size_t)j * zp_row_bytes, lb, p.zero_point);
    }
    for (int32_t r = 0; r < k; ++r) quant::SetNibble(out.codes, (size_t)j * row_nibbles + r, codes[(size_t)r * n + j]);
  }
  if (result) {
    result->proxy_loss = loss / 2;
    result->damp_used = damp;
    result->dead_inputs = dead;
  }
  return Status::kOk;
}

template <typename HT>
static Status GptqQuantizeAny(const float* w, int32_t k, int32_t n, const HT* hessian, const WeightQuantConfig& cfg,
                              const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads) {
  return StatusFromExceptions([&] {
    if (!gptq.input_scale) return GptqQuantizeUnguarded(w, k, n, hessian, cfg, gptq, out, result, threads);
    // awq+gptq: the problem in AWQ's scaled space. W becomes diag(s) W (the fp32 product AWQ's search
    // quantizes) and the activations X diag(1/s), whose Hessian is diag(1/s) H diag(1/s).
    if (k <= 0 || n <= 0 || !w || !hessian) return Status::kInvalidArgument;
    const float* sc = gptq.input_scale;
    for (int32_t i = 0; i < k; ++i)
      if (!(sc[i] > 0) || !std::isfinite(sc[i])) return Status::kInvalidArgument;
    std::vector<float> ws((size_t)k * n);
    for (int32_t i = 0; i < k; ++i)
      for (int32_t j = 0; j < n; ++j) ws[(size_t)i * n + j] = w[(size_t)i * n + j] * sc[i];
    std::vector<double> hs((size_t)k * k);
    for (int32_t i = 0; i < k; ++i)
      for (int32_t j = 0; j < k; ++j) hs[(size_t)i * k + j] = (double)hessian[(size_t)i * k + j] / ((double)sc[i] * (double)sc[j]);
    GptqConfig inner = gptq;
    inner.input_scale = nullptr;
    return GptqQuantizeUnguarded(ws.data(), k, n, hs.data(), cfg, inner, out, result, threads);
  });
}

Status GptqQuantize(const float* w, int32_t k, int32_t n, const double* hessian, const WeightQuantConfig& cfg,
                    const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads) {
  return GptqQuantizeAny(w, k, n, hessian, cfg, gptq, out, result, threads);
}

Status GptqQuantize(const float* w, int32_t k, int32_t n, const float* hessian, const WeightQuantConfig& cfg,
                    const GptqConfig& gptq, const QuantizedOutputs& out, GptqResult* result, int threads) {
  return GptqQuantizeAny(w, k, n, hessian, cfg, gptq, out, result, threads);
}

}  // namespace w4a8
