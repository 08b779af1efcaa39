// Times the W4A16 CPU paths per ISA (float activations, W4A8MatMul with activation "none"): GemmW4A16
// on the canonical arrays (w4a16-<isa>) and GemmW4A16Packed on the packed weight (w4a16p-<isa>), beside
// the W4A8 path (GemmW4A8, prepacked, per-(token, group) int8
// activations) on the same int4 asymmetric group-128 weights, for M in {1, 2, 4, 8} by default. Both
// rotate through >= --rotate-mib of distinct weights (default 1100: they stream from DRAM, as in a
// decode step; --rotate-mib 1 keeps one weight in cache, which shows the compute bound). Rounds
// interleave the kernels; medians are printed with GB/s (the weight bytes each kernel reads per call),
// GFLOPS and the process CPU time per call. M > 16 reuses one weight (compute-bound).
//
// usage: bench_cpu_w4a16 [--rounds R] [--rotate-mib MiB] [--threads T] [--m 1,2,...] [--shape KxN]...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_args.h"
#include "bench_clock.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using bench::CpuNow;
using bench::Median;
using bench::Now;
using namespace w4a8::cpu;

namespace {

struct Shape {
  int32_t k, n;
};

// One canonical weight's arrays (the MatMulNBits layout W4A16 reads directly).
struct Canonical {
  std::vector<uint8_t> codes, zps;
  std::vector<float> scales;
  QuantizedWeight view(int32_t n, int32_t k, int32_t group) const {
    return QuantizedWeight{WeightFormat::kInt4, n, k, group, codes.data(), scales.data(), zps.data()};
  }
  size_t bytes() const { return codes.size() + zps.size() + scales.size() * sizeof(float); }
};

struct Kernel {
  std::string name;
  std::function<Status(size_t copy, const GemmArgs&)> run;
  size_t bytes;  // weight bytes read per call
};

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7, threads = 0;
  const int group = 128;
  double rotate_mib = 1100.0;
  std::vector<int> ms = {1, 2, 4, 8};
  std::vector<Shape> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : "";
    if (arg == "--rounds") rounds = std::max(1, std::atoi(val)), ++i;
    else if (arg == "--rotate-mib") rotate_mib = std::atof(val), ++i;
    else if (arg == "--threads") threads = std::atoi(val), ++i;
    else if (arg == "--m") ms = bench::ParseList(val), ++i;
    else if (arg == "--shape") {
      Shape s{};
      if (std::sscanf(val, "%dx%d", &s.k, &s.n) != 2) { std::fprintf(stderr, "--shape wants KxN, got %s\n", val); return 2; }
      shapes.push_back(s), ++i;
    } else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench_cpu_w4a16.cpp)\n", arg.c_str());
      return 2;
    }
  }
  if (shapes.empty()) shapes.push_back({4096, 4096});
  if (threads > 0) SetNumThreads(threads);
  std::printf("threads %d, group %d, int4 asymmetric, %d rounds, W4A8 on %s\n", NumThreads(), group, rounds, IsaName(DefaultIsa()));
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni})
    if (!IsaAvailable(isa)) std::printf("(%s not available: %s)\n", IsaName(isa), IsaUnavailableReason(isa));

  std::mt19937 rng(1);
  for (const Shape& shape : shapes) {
    Canonical base;
    base.codes.resize(CodeBytes(shape.n, shape.k, group));
    base.zps.resize(ZeroPointBytes(shape.n, shape.k, group));
    base.scales.resize(ScaleCount(shape.n, shape.k, group));
    for (auto& c : base.codes) c = (uint8_t)rng();
    for (auto& z : base.zps) z = (uint8_t)rng();
    for (auto& s : base.scales) s = 0.01f + 0.001f * (float)(rng() % 64);
    const int copies = std::max(1, (int)(rotate_mib * 1048576.0 / (double)base.bytes() + 0.999));
    std::vector<Canonical> canon(copies, base);
    std::vector<std::unique_ptr<PackedWeight>> packed(copies);
    for (int c = 0; c < copies; ++c)
      if (Prepack(canon[c].view(shape.n, shape.k, group), DefaultIsa(), &packed[c]) != Status::kOk) { std::fprintf(stderr, "prepack failed\n"); return 1; }

    std::vector<Kernel> kernels;
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni}) {
      if (!IsaAvailable(isa)) continue;
      kernels.push_back({std::string("w4a16-") + IsaName(isa),
                         [&, isa](size_t c, const GemmArgs& a) { return GemmW4A16(canon[c].view(shape.n, shape.k, group), isa, a); }, base.bytes()});
    }
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512Vnni}) {
      if (!IsaAvailable(isa)) continue;
      kernels.push_back({std::string("w4a16p-") + IsaName(isa), [&, isa](size_t c, const GemmArgs& a) { return GemmW4A16Packed(*packed[c], isa, a); },
                         base.bytes()});
    }
    kernels.push_back({"w4a8", [&](size_t c, const GemmArgs& a) { return GemmW4A8(*packed[c], a); }, base.bytes()});

    std::printf("\nK=%d N=%d: weight %.2f MiB; rotating through %d copies (%.0f MiB)\n", shape.k, shape.n, base.bytes() / 1048576.0, copies,
                copies * base.bytes() / 1048576.0);
    std::printf("%-18s %5s %11s %9s %9s %13s\n", "kernel", "M", "median ms", "GB/s", "GFLOPS", "cpu ms/call");
    for (int m : ms) {
      std::vector<float> x((size_t)m * shape.k), y((size_t)m * shape.n);
      for (auto& v : x) v = (float)((int)(rng() % 2001) - 1000) / 1000.0f;
      // Up to 16 tokens the weights stream (a decode step, a draft, a small batch); beyond, one weight
      // is reused (compute-bound) for about 2 GFLOP per sample.
      const bool stream = m <= 16;
      const int used = stream ? copies : 1;
      const int calls = stream ? std::max(copies, 8) : std::max(1, (int)(2e9 / (2.0 * m * shape.n * shape.k)));
      std::vector<std::vector<double>> wall(kernels.size()), cpu(kernels.size());
      for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up
        for (size_t i = 0; i < kernels.size(); ++i) {
          GemmArgs a;
          a.m = m;
          a.x = x.data();
          a.y = y.data();
          const double t0 = Now(), c0 = CpuNow();
          for (int c = 0; c < calls; ++c)
            if (kernels[i].run((size_t)(c % used), a) != Status::kOk) { std::fprintf(stderr, "%s failed\n", kernels[i].name.c_str()); return 1; }
          if (r > 0) wall[i].push_back((Now() - t0) / calls), cpu[i].push_back((CpuNow() - c0) / calls);
        }
      }
      for (size_t i = 0; i < kernels.size(); ++i) {
        const double s = Median(wall[i]);
        std::printf("%-18s %5d %11.4f %9.2f %9.1f %13.4f\n", kernels[i].name.c_str(), m, s * 1e3, kernels[i].bytes / s / 1e9,
                    2.0 * m * shape.n * (double)shape.k / s / 1e9, Median(cpu[i]) * 1e3);
      }
    }
  }
  return 0;
}
