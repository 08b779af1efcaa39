// Times W4A8MatMul's fused correction / adapter terms against plain W4A8: for each shape and M, one
// call of GemmW4A8 (int4 asymmetric, group 128, per-token int8 activations) alone, plus the low-rank
// term (cpu::LowRankAdd, fp32 factors as the op holds them), plus the same term with int8 factors
// (formats.h Int8Rows) in one call as the op runs it (cpu::GemmW4A8LowRankInt8), plus the Kronecker sum (cpu::KroneckerAdapterAdd,
// PEFT-style balanced factor shapes, B given transposed as the op holds it) at a parameter budget
// (default 5 % of K*N), and plus one Kronecker term of those shapes (a PEFT LoKr adapter with whole
// w1, w2). The variants interleave within each round; medians and the ratio to plain W4A8 are printed.
// M = 1 rotates through distinct layers (weights and factors) so they stream from DRAM, as in decode.
//
// usage: bench_fused_terms [--rounds R] [--budget F] [--rotate-mib MiB] [--threads T] [--shape KxN]...
//                          [--variants lowrank,lowrank-i8,kron,lokr1] [--m 1,128] [--json]
// --variants picks the terms to time (plain w4a8 always runs: the ratios need it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "bench_clock.h"
#include "w4a8/cpu_adapters.h"
#include "w4a8/cpu_kernels.h"

using namespace w4a8;
using bench::CpuNow;
using bench::Median;
using bench::Now;
using namespace w4a8::cpu;

namespace {

// PEFT's factorization(): the divisor pair (m <= n) of `d` closest to sqrt(d).
std::pair<int32_t, int32_t> Factorization(int32_t d) {
  int32_t m = 1, n = d;
  while (m < n) {
    int32_t next = m + 1;
    while (d % next != 0) ++next;
    const int32_t nn = d / next;
    if (next + nn > m + n) break;
    m = next;
    n = nn;
  }
  return {std::min(m, n), std::max(m, n)};
}

struct Layer {
  std::vector<uint8_t> codes, zps;
  std::vector<float> scales, u, v, ka, kb, us, vs;
  std::vector<int8_t> ut8, v8;
  std::unique_ptr<PackedWeight> packed;
};

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7, threads = 0;
  double budget = 0.05, rotate_mib = 512;
  bool json = false;
  std::vector<std::pair<int32_t, int32_t>> shapes;
  std::string variants = "lowrank,lowrank-i8,kron,lokr1";
  std::vector<int> ms = {1, 128};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--rounds") rounds = std::atoi(next());
    else if (a == "--budget") budget = std::atof(next());
    else if (a == "--rotate-mib") rotate_mib = std::atof(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--json") json = true;
    else if (a == "--variants") variants = "," + std::string(next()) + ",";
    else if (a == "--m") {
      ms.clear();
      for (const char* p = next(); *p;) {
        char* end = nullptr;
        const long v = std::strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096) { std::fprintf(stderr, "--m takes a list like 1,128\n"); return 2; }
        ms.push_back((int)v);
        p = *end == ',' ? end + 1 : end;
      }
    }
    else if (a == "--shape") {
      int k = 0, n = 0;
      if (std::sscanf(next(), "%dx%d", &k, &n) != 2 || k < 16 || n < 1) { std::fprintf(stderr, "--shape KxN\n"); return 2; }
      shapes.push_back({k, n});
    } else {
      std::fprintf(stderr, "usage: bench_fused_terms [--rounds R] [--budget F] [--rotate-mib MiB] [--threads T] [--shape KxN]... "
                           "[--variants lowrank,lowrank-i8,kron,lokr1] [--m 1,128] [--json]\n");
      return 2;
    }
  }
  if (rounds < 1 || budget <= 0 || budget >= 1) { std::fprintf(stderr, "--rounds >= 1 and 0 < --budget < 1\n"); return 2; }
  if (shapes.empty()) shapes = {{4096, 4096}, {2048, 5632}};
  if (threads > 0) SetNumThreads(threads);
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> uf(-0.05f, 0.05f);
  const int32_t group = 128;
  if (!json) std::printf("%d threads, ISA %s, budget %.3g of K*N, %d rounds (medians)\n", NumThreads(), IsaName(DefaultIsa()), budget, rounds);
  bool first_row = true;
  if (json) std::printf("[");
  for (auto [k, n] : shapes) {
    const int32_t rank = std::max<int32_t>(1, (int32_t)(budget * k * n / (k + n)));
    const auto [k1, k2] = Factorization(k);
    const auto [n1, n2] = Factorization(n);
    const int32_t terms = std::max<int32_t>(1, (int32_t)(budget * k * n / ((double)k1 * n1 + (double)k2 * n2)));
    const size_t layer_bytes = CodeBytes(n, k, group) + (size_t)ScaleCount(n, k, group) * 5 + (size_t)rank * (k + n) * 4;
    const int layers = std::max(1, (int)(rotate_mib * 1048576.0 / layer_bytes));
    std::vector<Layer> rot(layers);
    for (Layer& l : rot) {
      l.codes.resize(CodeBytes(n, k, group));
      for (auto& c : l.codes) c = (uint8_t)rng();
      l.scales.resize(ScaleCount(n, k, group));
      for (auto& s : l.scales) s = 0.01f + 0.001f * (float)(rng() % 100);
      l.zps.resize(ZeroPointBytes(n, k, group));
      for (auto& z : l.zps) z = (uint8_t)rng();
      const QuantizedWeight w{WeightFormat::kInt4, n, k, group, l.codes.data(), l.scales.data(), l.zps.data()};
      if (Prepack(w, DefaultIsa(), &l.packed) != Status::kOk) { std::fprintf(stderr, "prepack failed\n"); return 1; }
      l.codes = {};
      l.u.resize((size_t)k * rank);
      l.v.resize((size_t)rank * n);
      for (auto& f : l.u) f = uf(rng);
      for (auto& f : l.v) f = uf(rng);
      // The int8 form: U transposed to [r][K], each row with its scale; V [r][N] likewise.
      std::vector<float> ut((size_t)rank * k);
      for (int32_t kk = 0; kk < k; ++kk)
        for (int32_t c = 0; c < rank; ++c) ut[(size_t)c * k + kk] = l.u[(size_t)kk * rank + c];
      l.ut8.resize(ut.size());
      l.v8.resize(l.v.size());
      l.us.resize(rank);
      l.vs.resize(rank);
      if (QuantizeInt8Rows(ut.data(), rank, k, l.ut8.data(), l.us.data()) != Status::kOk ||
          QuantizeInt8Rows(l.v.data(), rank, n, l.v8.data(), l.vs.data()) != Status::kOk) { std::fprintf(stderr, "int8 factors failed\n"); return 1; }
      l.ka.resize((size_t)terms * n1 * k1);
      l.kb.resize((size_t)terms * n2 * k2);
      for (auto& f : l.ka) f = uf(rng);
      for (auto& f : l.kb) f = uf(rng);
    }
    for (int m : ms) {
      std::vector<float> x((size_t)m * k), y((size_t)m * n);
      for (auto& f : x) f = uf(rng) * 20;
      const int calls = m == 1 ? layers : std::max(3, (int)(4e9 / (2.0 * m * n * k)));
      constexpr int kVariants = 5;
      const char* names[kVariants] = {"w4a8", "w4a8+lowrank", "w4a8+lowrank-i8", "w4a8+kron", "w4a8+lokr1"};
      std::vector<double> t[kVariants];
      bool on[kVariants];
      for (int variant = 0; variant < kVariants; ++variant)
        on[variant] = variant == 0 || ("," + variants + ",").find("," + std::string(names[variant] + 5) + ",") != std::string::npos;
      for (int r = 0; r <= rounds; ++r) {
        for (int variant = 0; variant < kVariants; ++variant) {
          if (!on[variant]) continue;
          const double t0 = Now();
          for (int c = 0; c < calls; ++c) {
            const Layer& l = rot[m == 1 ? c % layers : 0];
            GemmArgs a;
            a.m = m;
            a.x = x.data();
            a.y = y.data();
            a.act = ActQuant::kPerToken;
            Status s = variant == 2 ? GemmW4A8LowRankInt8(*l.packed, LowRankInt8Term{k, rank, n, l.ut8.data(), l.us.data(), l.v8.data(), l.vs.data()}, a)
                                    : GemmW4A8(*l.packed, a);
            if (s == Status::kOk && variant == 1) s = LowRankAdd(LowRankTerm{k, rank, n, l.u.data(), l.v.data()}, m, x.data(), y.data(), DefaultIsa());
            // kb holds [terms][k2][n2]: B^T, as W4A8MatMul passes it (KronTerms::b_t).
            if (s == Status::kOk && variant == 3) s = KroneckerAdapterAdd(KronTerms{terms, n1, k1, n2, k2, l.ka.data(), nullptr, l.kb.data()}, m, x.data(), y.data());
            if (s == Status::kOk && variant == 4) s = KroneckerAdapterAdd(KronTerms{1, n1, k1, n2, k2, l.ka.data(), nullptr, l.kb.data()}, m, x.data(), y.data());
            if (s != Status::kOk) { std::fprintf(stderr, "%s failed: %s\n", names[variant], StatusName(s)); return 1; }
          }
          if (r > 0) t[variant].push_back((Now() - t0) / calls);
        }
      }
      const double base = Median(t[0]);
      for (int variant = 0; variant < kVariants; ++variant) {
        if (!on[variant]) continue;
        const double med = Median(t[variant]);
        // Per-round ratios to the same round's plain call, then their median: robust to a busy round.
        std::vector<double> ratios;
        for (size_t i = 0; i < t[variant].size(); ++i) ratios.push_back(t[variant][i] / t[0][i]);
        const double ratio = Median(ratios);
        const std::string shapes = "A " + std::to_string(k1) + "x" + std::to_string(n1) + " B " + std::to_string(k2) + "x" + std::to_string(n2);
        const std::string detail = variant == 1 ? "rank " + std::to_string(rank) + " fp32"
                                   : variant == 2 ? "rank " + std::to_string(rank) + " int8"
                                   : variant == 3 ? std::to_string(terms) + " terms " + shapes
                                   : variant == 4 ? "1 term " + shapes
                                                  : "";
        if (json) {
          std::printf("%s\n{\"k\":%d,\"n\":%d,\"m\":%d,\"variant\":\"%s\",\"detail\":\"%s\",\"median_us\":%.2f,\"ratio\":%.4f,\"budget\":%.4g,\"threads\":%d,\"isa\":\"%s\"}",
                      first_row ? "" : ",", k, n, m, names[variant], detail.c_str(), med * 1e6, ratio, budget, NumThreads(), IsaName(DefaultIsa()));
          first_row = false;
        } else {
          std::printf("K %5d N %5d M %4d  %-16s %10.1f us  x%.3f vs w4a8  %s\n", k, n, m, names[variant], med * 1e6, ratio, detail.c_str());
        }
        (void)base;
      }
    }
  }
  if (json) std::printf("\n]\n");
  return 0;
}
