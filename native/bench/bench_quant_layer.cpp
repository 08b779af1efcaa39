// Times RTN, AWQ (scale grid + clip search) and GPTQ on the seven linear layers of one
// LLaMA-7B-shaped decoder layer (q,k,v,o 4096x4096; gate,up K=4096 N=11008; down K=11008 N=4096),
// synthetic weights and activations, int4 g128 asymmetric, and the calibration statistics pass
// that feeds them (Hessians from --tokens rows, reservoir sample of --awq-rows rows).
//
//   bench_quant_layer [--tokens 8192] [--awq-rows 1024] [--threads 2] [--only rtn,awq,gptq]
//                     [--scale 1] (divide every dimension by --scale for a quick run)
//                     [--act none|int8|fp8] (AWQ's activation format, default none)
//                     [--kernel off|token-group|token] (int8: score AWQ candidates with the CPU W4A8
//                     kernels instead of the float simulation) [--duo 1|0] (AWQ's duo-scaling family)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "w4a8/calib_stats.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"
#include "w4a8/quant.h"

using namespace w4a8;
using Clock = std::chrono::steady_clock;

static double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Process CPU seconds (all threads): on a shared, oversubscribed machine wall time overstates the
// work, so every line reports both.
static double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Linear {
  const char* name;
  int input;  // which activation feeds it
  int32_t k, n;
  std::vector<float> w;
};

// Activations with a few salient channels (x30) like real LLM inputs; row r is a pure function of
// (input, r) so batches can be regenerated instead of stored.
static void ActivationRows(int input, int32_t k, int64_t r0, int64_t rows, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    std::mt19937 rng((uint32_t)(input * 1000003 + r0 + r));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (int32_t i = 0; i < k; ++i) out[r * k + i] = d(rng) * (i % 97 == 0 ? 30.0f : 1.0f);
  }
}

struct Buffers {
  std::vector<uint8_t> codes, zp;
  std::vector<float> scales, deq;
  QuantizedOutputs View() {
    return QuantizedOutputs{codes.data(), scales.data(), zp.empty() ? nullptr : zp.data(), deq.data()};
  }
};
static Buffers Alloc(const WeightQuantConfig& c, int32_t k, int32_t n) {
  Buffers b;
  b.codes.resize(QuantCodeBytes(c, k, n));
  b.scales.resize(QuantScaleCount(c, k, n));
  b.zp.resize(QuantZeroPointBytes(c, k, n));
  b.deq.resize((size_t)k * n);
  return b;
}

int main(int argc, char** argv) {
  int64_t tokens = 8192, awq_rows = 1024;
  int threads = 2, scale = 1;
  std::string only = "rtn,awq,gptq";
  std::string act_name = "none", kernel_name = "off";
  int duo = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--tokens") tokens = atoll(argv[i + 1]);
    else if (a == "--awq-rows") awq_rows = atoll(argv[i + 1]);
    else if (a == "--threads") threads = atoi(argv[i + 1]);
    else if (a == "--only") only = argv[i + 1];
    else if (a == "--scale") scale = atoi(argv[i + 1]);
    else if (a == "--act") act_name = argv[i + 1];
    else if (a == "--kernel") kernel_name = argv[i + 1];
    else if (a == "--duo") duo = atoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  ActFormat act = ActFormat::kNone;
  if (act_name == "int8") act = ActFormat::kInt8;
  else if (act_name == "fp8") act = ActFormat::kFp8E4M3;
  else if (act_name != "none") { std::fprintf(stderr, "--act must be none, int8 or fp8\n"); return 2; }
  int32_t kernel_act = -1;
  if (kernel_name == "token-group") kernel_act = 0;
  else if (kernel_name == "token") kernel_act = 1;
  else if (kernel_name != "off") { std::fprintf(stderr, "--kernel must be off, token-group or token\n"); return 2; }
  if (kernel_act >= 0 && act != ActFormat::kInt8) { std::fprintf(stderr, "--kernel needs --act int8\n"); return 2; }
  cpu::SetNumThreads(threads);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const int32_t d = 4096 / scale, f = 11008 / scale;
  std::printf("w4a8 bench_quant_layer: dims %d/%d, %lld calibration tokens, AWQ sample %lld rows, %d threads, GEMM %s\n",
              d, f, (long long)tokens, (long long)awq_rows, threads, GemmIsa());
  std::printf("AWQ: activations %s, candidates scored by %s%s, duo scaling %s\n", act_name.c_str(),
              kernel_act < 0 ? "float simulation" : "W4A8 kernels, act quant per ", kernel_act < 0 ? "" : kernel_name.c_str(),
              duo ? "on" : "off");

  // GEMM rate, for context.
  {
    const int64_t m = 1024, n = 1024, k = 1024;
    std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
    GemmF32(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    auto t = Clock::now();
    for (int i = 0; i < 5; ++i) GemmF32(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    const double g32 = 5 * 2.0 * m * n * k / Since(t) / 1e9;
    std::vector<double> ad(m * k, 0.5), bd(k * n, 0.25), cd(m * n);
    t = Clock::now();
    for (int i = 0; i < 3; ++i) GemmF64(false, false, m, n, k, 1.0, ad.data(), k, bd.data(), n, 0.0, cd.data(), n);
    const double g64 = 3 * 2.0 * m * n * k / Since(t) / 1e9;
    std::printf("GEMM 1024^3: fp32 %.1f GFLOP/s, fp64 %.1f GFLOP/s\n", g32, g64);
  }

  std::vector<Linear> layers = {{"q_proj", 0, d, d, {}},    {"k_proj", 0, d, d, {}},   {"v_proj", 0, d, d, {}},
                                {"o_proj", 1, d, d, {}},    {"gate_proj", 2, d, f, {}}, {"up_proj", 2, d, f, {}},
                                {"down_proj", 3, f, d, {}}};
  const int32_t input_k[4] = {d, d, d, f};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& l : layers) {
    l.w.resize((size_t)l.k * l.n);
    for (auto& v : l.w) v = nd(rng);
  }
  WeightQuantConfig cfg;  // int4 asymmetric, groups of 128 along K
  cfg.group_size = 128;

  if (only.find("rtn") != std::string::npos) {
    double total = 0, cpu = 0;
    for (auto& l : layers) {
      Buffers b = Alloc(cfg, l.k, l.n);
      auto t = Clock::now();
      const double c0 = CpuSeconds();
      QuantizeWeight(l.w.data(), l.k, l.n, cfg, nullptr, b.View(), threads);
      const double s = Since(t), c = CpuSeconds() - c0;
      total += s;
      cpu += c;
      std::printf("RTN  %-9s %5dx%-5d %7.3f s wall %7.3f s cpu\n", l.name, l.k, l.n, s, c);
    }
    std::printf("RTN  total %.3f s wall, %.3f s cpu\n", total, cpu);
  }

  // Calibration statistics: Hessian over `tokens` rows, sample of awq_rows, batches of 512.
  std::vector<std::unique_ptr<CalibStats>> stats(4);
  const bool need_stats = only.find("awq") != std::string::npos || only.find("gptq") != std::string::npos;
  if (need_stats) {
    double total = 0, cpu = 0;
    std::vector<float> batch;
    for (int in = 0; in < 4; ++in) {
      CalibStatsConfig sc;
      sc.k = input_k[in];
      sc.sample_rows = (int32_t)awq_rows;
      sc.seed = 7;
      sc.hessian = only.find("gptq") != std::string::npos ? HessianMode::kFloat64 : HessianMode::kNone;
      CalibStats::Create(sc, &stats[in]);
      double accumulate = 0, cpu_in = 0;
      for (int64_t r0 = 0; r0 < tokens; r0 += 512) {
        const int64_t rows = std::min<int64_t>(512, tokens - r0);
        batch.resize((size_t)rows * sc.k);
        ActivationRows(in, sc.k, r0, rows, batch.data());
        auto t = Clock::now();
        const double c0 = CpuSeconds();
        stats[in]->AddRows(batch.data(), rows, threads);
        accumulate += Since(t);
        cpu_in += CpuSeconds() - c0;
      }
      total += accumulate;
      cpu += cpu_in;
      std::printf("calib stats input %d (K=%d): %.3f s wall %.3f s cpu for %lld rows (%.1f MB held)\n", in, sc.k,
                  accumulate, cpu_in, (long long)tokens, stats[in]->bytes() / 1e6);
    }
    std::printf("calib stats total %.3f s wall, %.3f s cpu (activation generation excluded)\n", total, cpu);
  }

  if (only.find("awq") != std::string::npos) {
    const std::vector<std::vector<int>> groups = {{0, 1, 2}, {3}, {4, 5}, {6}};
    double total = 0, cpu = 0;
    for (const auto& grp : groups) {
      const int in = layers[grp[0]].input;
      const int32_t k = input_k[in];
      const int64_t s = stats[in]->sample_count();
      std::vector<float> x((size_t)s * k), mean(k);
      stats[in]->Sample(x.data());
      stats[in]->MeanAbs(mean.data());
      std::vector<Buffers> outs;
      std::vector<AwqLayer> al(grp.size());
      outs.reserve(grp.size());
      for (size_t i = 0; i < grp.size(); ++i) {
        outs.push_back(Alloc(cfg, k, layers[grp[i]].n));
        al[i].w = layers[grp[i]].w.data();
        al[i].n = layers[grp[i]].n;
        al[i].out = outs.back().View();
      }
      std::vector<float> sv(k);
      AwqResult res;
      AwqConfig ac;  // 20 alphas (x2 with duo scaling), 11 clip ratios
      ac.act = act;
      ac.kernel_act = kernel_act;
      ac.duo_scaling = duo != 0;
      auto t = Clock::now();
      const double c0 = CpuSeconds();
      Status st = AwqSearch(x.data(), s, k, mean.data(), al.data(), (int32_t)al.size(), cfg, ac, sv.data(), &res, threads);
      const double sec = Since(t), c = CpuSeconds() - c0;
      total += sec;
      cpu += c;
      std::string names;
      for (int i : grp) names += std::string(names.empty() ? "" : "+") + layers[i].name;
      std::printf("AWQ  %-26s %7.2f s wall %7.2f s cpu (scale search %.2f s, clip search %.2f s wall) alpha %.2f err %.4g -> %.4g%s\n",
                  names.c_str(), sec, c, res.seconds_scale_search, res.seconds_clip_search, res.alpha, res.error_before,
                  res.error_after, st == Status::kOk ? "" : " FAILED");
    }
    std::printf("AWQ  total %.2f s wall, %.2f s cpu\n", total, cpu);
  }

  if (only.find("gptq") != std::string::npos) {
    double total = 0, cpu = 0;
    std::vector<std::vector<double>> hs(4);
    for (auto& l : layers) {
      auto& h = hs[l.input];
      if (h.empty()) {
        h.resize((size_t)l.k * l.k);
        stats[l.input]->HessianF64(h.data());
      }
      Buffers b = Alloc(cfg, l.k, l.n);
      GptqResult res;
      auto t = Clock::now();
      const double c0 = CpuSeconds();
      Status st = GptqQuantize(l.w.data(), l.k, l.n, h.data(), cfg, GptqConfig{}, b.View(), &res, threads);
      const double s = Since(t), c = CpuSeconds() - c0;
      total += s;
      cpu += c;
      std::printf("GPTQ %-9s %5dx%-5d %7.2f s wall %7.2f s cpu%s\n", l.name, l.k, l.n, s, c, st == Status::kOk ? "" : " FAILED");
      if (l.input != 0 || &l == &layers[2]) {
        // Free each Hessian after its last consumer.
        bool used_later = false;
        for (auto* p = &l + 1; p < layers.data() + layers.size(); ++p) used_later |= p->input == l.input;
        if (!used_later) std::vector<double>().swap(h);
      }
    }
    std::printf("GPTQ total %.2f s wall, %.2f s cpu (Hessians shared per input; Cholesky per layer)\n", total, cpu);
  }
  return 0;
}
