// AWQ scale search and per-group clip search for layers sharing one input (see quant.h for the
// definition). The expensive part is Qa(X / s) Q(s W) for each alpha: one GEMM per layer.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "linalg/parallel.h"
#include "quant/group_codec.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

namespace w4a8 {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct Scratch {
  std::vector<float> xs, ws, deq, yq, scales;
  std::vector<uint8_t> codes, zp;
  QuantizedOutputs View() {
    QuantizedOutputs o;
    o.codes = codes.data();
    o.scales = scales.data();
    o.zero_points = zp.empty() ? nullptr : zp.data();
    o.dequantized = deq.data();
    return o;
  }
};

// The elementwise passes below run on every candidate; on 7B-sized layers they are as costly as
// the quantization itself, so they are split over threads (in fixed-size chunks, so that sums do
// not depend on the thread count).
constexpr int64_t kChunk = 1 << 16;

int ThreadsFor(int threads, double elements) { return elements < 1e5 ? 1 : threads; }

void ScaleRows(const float* w, int32_t k, int32_t n, const float* s, float* out, int threads) {
  ParallelRanges(ThreadsFor(threads, (double)k * n), k, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float si = s[i];
      const float* src = w + (size_t)i * n;
      float* dst = out + (size_t)i * n;
      for (int32_t j = 0; j < n; ++j) dst[j] = src[j] * si;
    }
  });
}

void DivideColumns(const float* x, int64_t rows, int32_t k, const float* s, float* out, int threads) {
  ParallelRanges(ThreadsFor(threads, (double)rows * k), rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int32_t i = 0; i < k; ++i) out[r * k + i] = x[r * k + i] / s[i];
  });
}

double SquaredDiff(const float* a, const float* b, size_t count, int threads) {
  const int64_t chunks = ((int64_t)count + kChunk - 1) / kChunk;
  std::vector<double> part((size_t)chunks, 0.0);
  ParallelRanges(ThreadsFor(threads, (double)count), chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const size_t i1 = std::min(count, (size_t)(c + 1) * kChunk);
      double sum = 0;
      for (size_t i = (size_t)c * kChunk; i < i1; ++i) {
        const double d = (double)a[i] - b[i];
        sum += d * d;
      }
      part[(size_t)c] = sum;
    }
  });
  double sum = 0;
  for (double v : part) sum += v;
  return sum;
}

}  // namespace

static Status AwqSearchUnguarded(const float* x, int64_t s, int32_t k, const float* mean_abs, AwqLayer* layers, int32_t layer_count,
                                 const WeightQuantConfig& cfg, const AwqConfig& awq, float* scales_out, AwqResult* result,
                                 int threads) {
  if (CheckWeightQuantConfig(cfg) != Status::kOk) return Status::kInvalidArgument;
  if (!x || s <= 0 || k <= 0 || !layers || layer_count <= 0 || !scales_out || awq.grid_size < 1 || awq.clip_grid < 1 ||
      !(awq.clip_min > 0 && awq.clip_min <= 1))
    return Status::kInvalidArgument;
  if (awq.act != ActFormat::kNone && awq.act != ActFormat::kInt8 && awq.act != ActFormat::kFp8E4M3)
    return Status::kInvalidArgument;
  // The kernels run int8 activations on the canonical (K-blocked) layout only.
  const bool kernel = awq.kernel_act >= 0;
  if (kernel && (awq.kernel_act > 1 || awq.act != ActFormat::kInt8 || cfg.grouping != Grouping::kAlongK))
    return Status::kInvalidArgument;
  int32_t n_max = 0;
  for (int32_t l = 0; l < layer_count; ++l) {
    const AwqLayer& L = layers[l];
    if (!L.w || L.n <= 0 || !L.out.codes || !L.out.scales || (HasZeroPoints(cfg) && !L.out.zero_points))
      return Status::kInvalidArgument;
    for (size_t i = 0; i < (size_t)k * L.n; ++i)
      if (!std::isfinite(L.w[i])) return Status::kNumericalError;
    n_max = std::max(n_max, L.n);
  }
  for (size_t i = 0; i < (size_t)s * k; ++i)
    if (!std::isfinite(x[i])) return Status::kNumericalError;
  const int t = ChunkCount(threads);
  const auto t0 = std::chrono::steady_clock::now();

  std::vector<double> mean(k, 0.0);
  if (mean_abs) {
    for (int32_t i = 0; i < k; ++i) {
      if (!(mean_abs[i] >= 0) || !std::isfinite(mean_abs[i])) return Status::kInvalidArgument;
      mean[i] = mean_abs[i];
    }
  } else {
    for (int64_t r = 0; r < s; ++r)
      for (int32_t i = 0; i < k; ++i) mean[i] += std::fabs(x[r * k + i]);
    for (auto& m : mean) m /= (double)s;
  }

  // Mean |w| per input channel over every output of every layer, each weight divided by its
  // group's absmax first (AutoAWQ's duo scaling statistic).
  std::vector<double> wmean(k, 0.0);
  for (int32_t l = 0; l < layer_count; ++l) {
    const int32_t n = layers[l].n;
    const int32_t gg = cfg.group_size > 0 ? cfg.group_size : k;
    for (int32_t j = 0; j < n; ++j)
      for (int32_t b0 = 0; b0 < k; b0 += gg) {
        double mx = 0;
        for (int32_t i = b0; i < std::min(k, b0 + gg); ++i) mx = std::max(mx, (double)std::fabs(layers[l].w[(size_t)i * n + j]));
        for (int32_t i = b0; i < std::min(k, b0 + gg); ++i)
          wmean[i] += mx > 0 ? std::fabs(layers[l].w[(size_t)i * n + j]) / mx : 0;
      }
  }
  {
    int64_t cols = 0;
    for (int32_t l = 0; l < layer_count; ++l) cols += layers[l].n;
    for (auto& v : wmean) v /= (double)cols;
  }
  // Reference outputs X W and their energies.
  std::vector<std::vector<float>> yref(layer_count);
  std::vector<double> den(layer_count, 0.0);
  double den_total = 0;
  for (int32_t l = 0; l < layer_count; ++l) {
    yref[l].resize((size_t)s * layers[l].n);
    GemmF32(false, false, s, layers[l].n, k, 1.0f, x, k, layers[l].w, layers[l].n, 0.0f, yref[l].data(), layers[l].n, t);
    for (float v : yref[l]) den[l] += (double)v * v;
    den_total += den[l];
  }
  if (!(den_total > 0)) den_total = 1;

  Scratch sc;
  sc.xs.resize((size_t)s * k);
  sc.ws.resize((size_t)k * n_max);
  sc.deq.resize((size_t)k * n_max);
  sc.yq.resize((size_t)s * n_max);
  sc.codes.resize(QuantCodeBytes(cfg, k, n_max));
  sc.scales.resize(QuantScaleCount(cfg, k, n_max));
  sc.zp.resize(QuantZeroPointBytes(cfg, k, n_max));

  // Kernel path: the candidate's canonical codes run through the CPU W4A8 GEMM (prepacked per
  // candidate; the layout is the same for every ISA, the best one runs it).
  const cpu::Isa isa = cpu::DefaultIsa();
  const cpu::ActQuant act_quant = awq.kernel_act == 1 ? cpu::ActQuant::kPerToken : cpu::ActQuant::kPerTokenPerGroup;
  auto kernel_product = [&](int32_t n, const float* xs, float* y) -> Status {
    QuantizedWeight qw{cfg.format, n, k, LayoutGroupSize(cfg, k), sc.codes.data(), sc.scales.data(),
                       HasZeroPoints(cfg) ? sc.zp.data() : nullptr};
    std::unique_ptr<cpu::PackedWeight> packed;
    if (Status st = cpu::Prepack(qw, isa, &packed); st != Status::kOk) return st;
    cpu::GemmArgs ga;
    ga.m = (int32_t)s;
    ga.x = xs;
    ga.y = y;
    ga.act = act_quant;
    return cpu::GemmW4A8(*packed, ga);
  };

  // Summed squared output error of every layer for scales sv and optional per-layer group clips.
  std::vector<double> layer_num(layer_count);
  auto evaluate = [&](const float* sv, const std::vector<std::vector<float>>* clips, double* total) -> Status {
    DivideColumns(x, s, k, sv, sc.xs.data(), t);
    if (!kernel && awq.act != ActFormat::kNone) {
      Status st = FakeQuantActivations(sc.xs.data(), s, k, awq.act, sc.xs.data(), nullptr, t);
      if (st != Status::kOk) return st;
    }
    double num = 0;
    for (int32_t l = 0; l < layer_count; ++l) {
      const int32_t n = layers[l].n;
      ScaleRows(layers[l].w, k, n, sv, sc.ws.data(), t);
      Status st = QuantizeWeight(sc.ws.data(), k, n, cfg, clips ? (*clips)[l].data() : nullptr, sc.View(), t);
      if (st != Status::kOk) return st;
      if (kernel) {
        if (Status st2 = kernel_product(n, sc.xs.data(), sc.yq.data()); st2 != Status::kOk) return st2;
      } else {
        GemmF32(false, false, s, n, k, 1.0f, sc.xs.data(), k, sc.deq.data(), n, 0.0f, sc.yq.data(), n, t);
      }
      layer_num[l] = SquaredDiff(yref[l].data(), sc.yq.data(), (size_t)s * n, t);
      num += layer_num[l];
    }
    *total = num;
    return Status::kOk;
  };

  // --- scale search over alpha ---
  std::vector<float> sv(k), best_s(k, 1.0f);
  double best_err = INFINITY;
  float best_alpha = 0;
  std::vector<double> before(layer_count), after(layer_count);
  double err_before = 0;
  // Family 0 (llm-awq): s = mean|x|^alpha, whose alpha 0 is plain RTN. Family 1 (AutoAWQ's duo
  // scaling): s = mean|x|^alpha / mean|w|^(1 - alpha). Neither wins everywhere on stories260K
  // (docs/QUALITY.md), so both are searched and the calibration error decides.
  const int32_t families = awq.duo_scaling ? 2 : 1;
  bool best_duo = false;
  for (int32_t idx = 0; idx < awq.grid_size * families; ++idx) {
    const int32_t gi = idx % awq.grid_size;
    const bool duo = idx >= awq.grid_size;
    const double alpha = (double)gi / awq.grid_size;
    double smax = 0, smin = INFINITY;
    for (int32_t i = 0; i < k; ++i) {
      const double xa = std::pow(mean[i], alpha);
      const double v = std::max(duo ? xa / (std::pow(wmean[i], 1 - alpha) + 1e-4) : xa, 1e-4);
      sv[i] = (float)v;
      smax = std::max(smax, v);
      smin = std::min(smin, v);
    }
    const double norm = std::sqrt(smax * smin);
    for (int32_t i = 0; i < k; ++i) sv[i] = (float)(sv[i] / norm);
    double num = 0;
    if (Status st = evaluate(sv.data(), nullptr, &num); st != Status::kOk) return st;
    if (idx == 0) {
      err_before = num / den_total;
      for (int32_t l = 0; l < layer_count; ++l) before[l] = den[l] > 0 ? layer_num[l] / den[l] : 0;
    }
    if (num / den_total < best_err) {
      best_err = num / den_total;
      best_alpha = (float)alpha;
      best_duo = duo;
      best_s = sv;
      for (int32_t l = 0; l < layer_count; ++l) after[l] = den[l] > 0 ? layer_num[l] / den[l] : 0;
    }
  }
  const double seconds_scale = Seconds(t0);
  const auto t1 = std::chrono::steady_clock::now();

  // --- clip search per group on the scaled weights ---
  const int32_t g = cfg.group_size > 0 ? cfg.group_size : k;
  const int32_t blocks = (k + g - 1) / g;
  std::vector<std::vector<float>> clips(layer_count);
  double final_err = best_err;
  bool clipped = false;
  // Groups along N mix input channels of different H blocks: no per-group clip search there.
  if (awq.clip_grid > 1 && cfg.grouping == Grouping::kAlongK) {
    DivideColumns(x, s, k, best_s.data(), sc.xs.data(), t);
    // Diagonal blocks H_b = (X/s)[:, b]^T (X/s)[:, b].
    std::vector<float> hb((size_t)blocks * g * g, 0.0f);
    for (int32_t b = 0; b < blocks; ++b) {
      const int32_t width = std::min(g, k - b * g);
      GemmF32(true, false, width, width, s, 1.0f, sc.xs.data() + b * g, k, sc.xs.data() + b * g, k, 0.0f,
              hb.data() + (size_t)b * g * g, g, t);
    }
    std::vector<float> delta((size_t)k * n_max), hd((size_t)g * n_max);
    const int32_t layout_g = LayoutGroupSize(cfg, k);
    const int32_t layout_blocks = (k + layout_g - 1) / layout_g;
    for (int32_t l = 0; l < layer_count; ++l) {
      const int32_t n = layers[l].n;
      std::vector<double> best_e((size_t)n * blocks, INFINITY);
      clips[l].assign((size_t)n * layout_blocks, 1.0f);  // indexed like the scales
      ScaleRows(layers[l].w, k, n, best_s.data(), sc.ws.data(), t);
      for (int32_t ci = 0; ci < awq.clip_grid; ++ci) {
        const float r = 1.0f - (float)ci * (1.0f - awq.clip_min) / (float)(awq.clip_grid - 1);
        WeightQuantConfig c = cfg;
        c.clip_ratio = r;
        if (Status st = QuantizeWeight(sc.ws.data(), k, n, c, nullptr, sc.View(), t); st != Status::kOk) return st;
        for (size_t i = 0; i < (size_t)k * n; ++i) delta[i] = sc.ws[i] - sc.deq[i];
        for (int32_t b = 0; b < blocks; ++b) {
          const int32_t width = std::min(g, k - b * g);
          const float* db = delta.data() + (size_t)b * g * n;
          GemmF32(false, false, width, n, width, 1.0f, hb.data() + (size_t)b * g * g, g, db, n, 0.0f, hd.data(), n, t);
          for (int32_t j = 0; j < n; ++j) {
            double e = 0;
            for (int32_t i = 0; i < width; ++i) e += (double)db[(size_t)i * n + j] * hd[(size_t)i * n + j];
            double& be = best_e[(size_t)j * blocks + b];
            if (e < be) {
              be = e;
              int32_t lb0, lb1;
              quant::LayoutBlocksOf(b, g, k, layout_g, &lb0, &lb1);
              for (int32_t lb = lb0; lb < lb1; ++lb) clips[l][(size_t)j * layout_blocks + lb] = r;
            }
          }
        }
      }
    }
    double num = 0;
    if (Status st = evaluate(best_s.data(), &clips, &num); st != Status::kOk) return st;
    if (num / den_total < best_err) {
      clipped = true;
      final_err = num / den_total;
      for (int32_t l = 0; l < layer_count; ++l) after[l] = den[l] > 0 ? layer_num[l] / den[l] : 0;
    }
  }
  const double seconds_clip = Seconds(t1);

  // --- final quantization into the caller's buffers ---
  for (int32_t l = 0; l < layer_count; ++l) {
    AwqLayer& L = layers[l];
    ScaleRows(L.w, k, L.n, best_s.data(), sc.ws.data(), t);
    const float* gc = clipped ? clips[l].data() : nullptr;
    if (Status st = QuantizeWeight(sc.ws.data(), k, L.n, cfg, gc, L.out, t); st != Status::kOk) return st;
    if (L.group_clip) {
      const size_t groups = QuantScaleCount(cfg, k, L.n);
      for (size_t i = 0; i < groups; ++i) L.group_clip[i] = clipped ? clips[l][i] : cfg.clip_ratio;
    }
    L.error_before = before[l];
    L.error_after = after[l];
  }
  std::copy(best_s.begin(), best_s.end(), scales_out);
  if (result) {
    result->alpha = best_alpha;
    result->duo_scaling = best_duo;
    result->error_before = err_before;
    result->error_after_scale = best_err;
    result->error_after = final_err;
    result->clipped = clipped;
    result->seconds_scale_search = seconds_scale;
    result->seconds_clip_search = seconds_clip;
  }
  return Status::kOk;
}

Status AwqSearch(const float* x, int64_t s, int32_t k, const float* mean_abs, AwqLayer* layers, int32_t layer_count,
                 const WeightQuantConfig& cfg, const AwqConfig& awq, float* scales_out, AwqResult* result,
                 int threads) {
  return StatusFromExceptions([&] {
    return AwqSearchUnguarded(x, s, k, mean_abs, layers, layer_count, cfg, awq, scales_out, result, threads);
  });
}

}  // namespace w4a8
