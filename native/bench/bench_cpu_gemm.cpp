// Times the W4A8 CPU paths: GemmW4A8 with each ISA's kernels for M in {1, 8, 32, 128, 512} on K x N
// shapes (default 4096 x 4096), int4 asymmetric, group 128, per-(token, group) activation quantization.
// M <= 16 rotates through >= 1 GiB of distinct packed weights so that the weights stream from DRAM, as
// they do in a real decode step (one token, or a few: a prompt-lookup draft, a small batch); larger M
// reuse one weight (it is compute-bound there). Rounds interleave
// the ISAs; the medians are printed with GB/s (packed weight bytes read per call) and TOPS (2*M*N*K),
// and the process CPU time per call (all threads; the pool's brief spin-waits included).
// --gap-us G sleeps G microseconds before each call, outside the timed part, as a decode step's other
// ops do between two GEMVs: past the pool's spin window (thread_pool.cpp) the workers are asleep and
// the time includes waking them.
//
// usage: bench_cpu_gemm [--rounds R] [--rotate-mib MiB] [--threads T] [--isa name] [--m 1,8,...] [--shape KxN]...
//                       [--gap-us G]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"
#include "bench_args.h"
#include "bench_clock.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using bench::CpuNow;
using bench::Median;
using bench::Now;
using namespace w4a8::cpu;

namespace {

// Up to this many token rows the weights stream from DRAM (rotated), as in decoding (drafts, small batches).
constexpr int kStreamMaxM = 16;

struct Shape {
  int32_t k, n;
};

size_t PackedBytes(const CpuPackedView& v) {
  const size_t meta = (size_t)v.n_panels * v.blocks_per_row * kCpuPanelN;
  return (size_t)v.n_panels * (v.k_padded / kCpuChunkK) * kCpuChunkBytes + meta * (sizeof(float) + 1);
}

uint64_t read_sink = 0;

// Sums every 8-byte word of a packed weight on the thread pool, four panels interleaved per task like
// the M = 1 kernel's four weight streams, then the scales: a memory-read reference measured under the
// same conditions (the kernel may still beat it slightly: it also prefetches in software).
uint64_t ReadAll(const CpuPackedView& v) {
  const size_t panel_words = (size_t)(v.k_padded / kCpuChunkK) * kCpuChunkBytes / 8;
  const size_t meta_words = (size_t)v.n_panels * v.blocks_per_row * kCpuPanelN * sizeof(float) / 8;
  const int64_t quads = (v.n_panels + 3) / 4;
  std::vector<uint64_t> partial((size_t)quads + 1, 0);
  cpu::ParallelFor(quads + 1, [&](int64_t t) {
    uint64_t acc[4] = {0, 0, 0, 0};
    if (t == quads) {
      const uint64_t* w = (const uint64_t*)v.scales;
      for (size_t i = 0; i + 8 <= meta_words; i += 8) acc[i / 8 % 4] += w[i];
    } else {
      const int streams = (int)std::min<int64_t>(4, v.n_panels - 4 * t);
      const uint64_t* w = (const uint64_t*)v.codes + (size_t)(4 * t) * panel_words;
      for (size_t i = 0; i < panel_words; i += 8) {
        for (int q = 0; q < streams; ++q) {
          const uint64_t* line = w + (size_t)q * panel_words + i;
          __builtin_prefetch(line + 256);
          acc[q] += line[0] ^ line[1] ^ line[2] ^ line[3] ^ line[4] ^ line[5] ^ line[6] ^ line[7];
        }
      }
    }
    partial[t] = acc[0] + acc[1] + acc[2] + acc[3];
  });
  uint64_t total = 0;
  for (uint64_t x : partial) total += x;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7, threads = 0, group = 128, gap_us = 0;
  double rotate_mib = 1100.0;
  std::vector<int> ms = {1, 8, 32, 128, 512};
  std::vector<Shape> shapes;
  std::vector<Isa> isas;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : "";
    if (arg == "--rounds") rounds = std::max(1, std::atoi(val)), ++i;
    else if (arg == "--rotate-mib") rotate_mib = std::atof(val), ++i;
    else if (arg == "--threads") threads = std::atoi(val), ++i;
    else if (arg == "--group") group = std::atoi(val), ++i;
    else if (arg == "--gap-us") gap_us = std::max(0, std::atoi(val)), ++i;
    else if (arg == "--m") ms = bench::ParseList(val), ++i;
    else if (arg == "--shape") {
      Shape s{};
      if (std::sscanf(val, "%dx%d", &s.k, &s.n) != 2) { std::fprintf(stderr, "--shape wants KxN, got %s\n", val); return 2; }
      shapes.push_back(s), ++i;
    } else if (arg == "--isa") {
      Isa isa;
      if (!ParseIsa(val, &isa)) { std::fprintf(stderr, "unknown ISA %s\n", val); return 2; }
      isas.push_back(isa), ++i;
    } else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench_cpu_gemm.cpp)\n", arg.c_str());
      return 2;
    }
  }
  if (shapes.empty()) shapes.push_back({4096, 4096});
  if (isas.empty()) {
    // the scalar path is a correctness twin; timing it at large M would take minutes
    for (Isa isa : AvailableIsas()) if (isa != Isa::kScalar) isas.push_back(isa);
  }
  if (threads > 0) SetNumThreads(threads);
  std::printf("threads %d, group %d, int4 asymmetric, per-(token, group) activation quantization, %d rounds%s\n",
              NumThreads(), group, rounds, gap_us ? (", " + std::to_string(gap_us) + " us idle before each call").c_str() : "");
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (!IsaAvailable(isa)) std::printf("(%s not available: %s)\n", IsaName(isa), IsaUnavailableReason(isa));
  }

  std::mt19937 rng(1);
  for (const Shape& shape : shapes) {
    // One random canonical weight, packed many times for the DRAM-streaming small-M cases.
    std::vector<uint8_t> codes(CodeBytes(shape.n, shape.k, group)), zps(ZeroPointBytes(shape.n, shape.k, group));
    std::vector<float> scales(ScaleCount(shape.n, shape.k, group));
    for (auto& c : codes) c = (uint8_t)rng();
    for (auto& z : zps) z = (uint8_t)rng();
    for (auto& s : scales) s = 0.01f + 0.001f * (float)(rng() % 64);
    const QuantizedWeight w{WeightFormat::kInt4, shape.n, shape.k, group, codes.data(), scales.data(), zps.data()};
    std::unique_ptr<PackedWeight> first;
    if (Prepack(w, isas.front(), &first) != Status::kOk) { std::fprintf(stderr, "prepack failed\n"); return 1; }
    const size_t bytes = PackedBytes(first->view());
    const int copies = std::max(1, (int)(rotate_mib * 1048576.0 / (double)bytes + 0.999));
    std::vector<std::unique_ptr<PackedWeight>> rotation;
    rotation.push_back(std::move(first));
    const bool want_stream = std::any_of(ms.begin(), ms.end(), [](int m) { return m <= kStreamMaxM; });
    for (int c = 1; want_stream && c < copies; ++c) {
      std::unique_ptr<PackedWeight> p;
      if (Prepack(w, isas.front(), &p) != Status::kOk) { std::fprintf(stderr, "prepack failed\n"); return 1; }
      rotation.push_back(std::move(p));
    }
    std::printf("\nK=%d N=%d: packed weight %.2f MiB; M <= %d rotates through %zu copies (%.0f MiB)\n", shape.k, shape.n, kStreamMaxM,
                bytes / 1048576.0, rotation.size(), rotation.size() * bytes / 1048576.0);
    std::printf("%-11s %5s %11s %9s %8s %13s\n", "isa", "M", "median ms", "GB/s", "TOPS", "cpu ms/call");
    for (int m : ms) {
      std::vector<float> x((size_t)m * shape.k), y((size_t)m * shape.n);
      for (auto& v : x) v = (float)((int)(rng() % 2001) - 1000) / 1000.0f;
      const bool stream = m <= kStreamMaxM;
      const int calls = stream ? (int)rotation.size() : std::max(1, (int)(2e9 / (2.0 * m * shape.n * shape.k)));
      std::vector<std::vector<double>> per_call(isas.size()), cpu_per_call(isas.size());
      std::vector<double> read_per_call;
      for (int r = 0; r < rounds + 1; ++r) {  // round 0 warms up
        for (size_t i = 0; i < isas.size(); ++i) {
          GemmArgs a;
          a.m = m;
          a.x = x.data();
          a.y = y.data();
          double busy = 0.0, cpu = 0.0;
          double t0 = Now(), c0 = CpuNow();
          for (int c = 0; c < calls; ++c) {
            const PackedWeight& pw = *rotation[stream ? c % rotation.size() : 0];
            if (gap_us > 0) {
              std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
              t0 = Now(), c0 = CpuNow();
            }
            if (GemmW4A8WithIsa(pw, isas[i], a) != Status::kOk) { std::fprintf(stderr, "gemm failed\n"); return 1; }
            if (gap_us > 0) busy += Now() - t0, cpu += CpuNow() - c0;
          }
          if (gap_us == 0) busy = Now() - t0, cpu = CpuNow() - c0;
          if (r > 0) {
            per_call[i].push_back(busy / calls);
            cpu_per_call[i].push_back(cpu / calls);
          }
        }
        if (m == 1) {
          // The ceiling in the same round: plainly read the same packed bytes with the same threads.
          const double t0 = Now();
          for (const auto& pw : rotation) read_sink += ReadAll(pw->view());
          if (r > 0) read_per_call.push_back((Now() - t0) / rotation.size());
        }
      }
      if (m == 1) {
        const double s = Median(read_per_call);
        std::printf("%-11s %5d %11.4f %9.2f %8s %13s  <- plain read of the same bytes (this round's ceiling)\n",
                    "read", m, s * 1e3, bytes / s / 1e9, "-", "-");
      }
      for (size_t i = 0; i < isas.size(); ++i) {
        const double s = Median(per_call[i]);
        std::printf("%-11s %5d %11.4f %9.2f %8.3f %13.4f\n", IsaName(isas[i]), m, s * 1e3, bytes / s / 1e9,
                    2.0 * m * shape.n * (double)shape.k / s / 1e12, Median(cpu_per_call[i]) * 1e3);
      }
    }
  }
  return read_sink == 42 ? 3 : 0;  // keeps the plain reads from being optimized away
}
