// Times CachedAttention (decoder_ops.h) for one decode step of a grouped-query model: one new token
// after `past` cached positions, tinyllama-1.1b's heads by default (32 query heads over 4 kv heads of
// 64), on the thread pool (all hardware threads unless --threads). Prints the median and the 10th
// percentile over --runs calls per past length. Inputs are seeded random values (the time does not
// depend on them). --layout shared (the default) is what the w4a8 engine runs: past and present are one
// buffer of capacity rows and a step writes only its new row; --layout copy is the standard layout,
// where every step also copies the past into present. --evict-mib M reads M MiB of other memory before
// each call, outside the timed part, as a decode step's weights do between two layers' attention: the
// cache then comes from DRAM, as it does in a real step (0, the default, times it in cache).
//
// usage: bench_cpu_attention [--past 160,576] [--heads 32] [--kv-heads 4] [--head-size 64] [--runs 2000] [--threads T]
//                            [--layout shared|copy] [--evict-mib M]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_args.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/decoder_ops.h"

using namespace w4a8;
using namespace w4a8::cpu;

int main(int argc, char** argv) {
  std::vector<int> pasts = {160, 576};
  int heads = 32, kv = 4, hs = 64, runs = 2000, threads = 0, evict_mib = 0;
  bool shared = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--past") pasts = bench::ParseList(argv[i + 1]);
    else if (arg == "--heads") heads = std::atoi(argv[i + 1]);
    else if (arg == "--kv-heads") kv = std::atoi(argv[i + 1]);
    else if (arg == "--head-size") hs = std::atoi(argv[i + 1]);
    else if (arg == "--runs") runs = std::max(1, std::atoi(argv[i + 1]));
    else if (arg == "--threads") threads = std::atoi(argv[i + 1]);
    else if (arg == "--evict-mib") evict_mib = std::max(0, std::atoi(argv[i + 1]));
    else if (arg == "--layout" && (std::string(argv[i + 1]) == "shared" || std::string(argv[i + 1]) == "copy")) shared = std::string(argv[i + 1]) == "shared";
    else {
      std::fprintf(stderr, "unknown argument %s (see the header of bench_cpu_attention.cpp)\n", arg.c_str());
      return 2;
    }
  }
  if (heads < 1 || kv < 1 || heads % kv != 0 || hs < 2 || hs % 2 != 0) {
    std::fprintf(stderr, "--heads must be a multiple of --kv-heads, --head-size even\n");
    return 2;
  }
  if (threads > 0) SetNumThreads(threads);
  std::printf("CachedAttention, one new token: %d heads over %d kv heads of %d, %d threads, ISA %s, %d runs, %s, %s\n", heads, kv, hs,
              NumThreads(), IsaName(DefaultIsa()), runs, shared ? "one cache buffer (present is past)" : "past copied into present",
              evict_mib ? (std::to_string(evict_mib) + " MiB read before each call (cache from DRAM)").c_str() : "in cache");
  std::vector<uint64_t> evict((size_t)evict_mib << 17, 1);
  uint64_t evict_sink = 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  const auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = normal(rng);
    return v;
  };
  for (const int past : pasts) {
    const int rope = past + 1;
    const int64_t q_width = (int64_t)(heads + 2 * kv) * hs;
    std::vector<float> qkv = random((size_t)q_width), pk = random((size_t)kv * past * hs), pv = random((size_t)kv * past * hs);
    std::vector<float> cos((size_t)rope * hs / 2), sin(cos.size()), out((size_t)heads * hs), prk((size_t)kv * (past + 1) * hs), prv(prk.size());
    for (int p = 0; p < rope; ++p)
      for (int i = 0; i < hs / 2; ++i) {
        const double angle = p * std::pow(10000.0, -2.0 * i / hs);
        cos[(size_t)p * hs / 2 + i] = (float)std::cos(angle);
        sin[(size_t)p * hs / 2 + i] = (float)std::sin(angle);
      }
    std::vector<int64_t> mask((size_t)past + 1, 1), pos{past};
    AttentionArgs a;
    a.batch = 1, a.seq = 1, a.past = past, a.heads = heads, a.kv_heads = kv, a.head_size = hs, a.rope_rows = rope;
    a.q_stride = q_width, a.kv_stride = q_width, a.scale = (float)(1.0 / std::sqrt((double)hs));
    a.q = qkv.data(), a.k = qkv.data() + (int64_t)heads * hs, a.v = a.k + (int64_t)kv * hs;
    a.past_k = pk.data(), a.past_v = pv.data(), a.mask = mask.data(), a.positions = pos.data(), a.cos = cos.data(), a.sin = sin.data();
    a.out = out.data(), a.present_k = prk.data(), a.present_v = prv.data();
    if (shared) {  // one buffer of past + 1 rows per kv head, its first `past` rows filled
      for (int g = 0; g < kv; ++g)
        for (int64_t i = 0; i < (int64_t)past * hs; ++i) {
          prk[((size_t)g * (past + 1)) * hs + i] = pk[(size_t)g * past * hs + i];
          prv[((size_t)g * (past + 1)) * hs + i] = pv[(size_t)g * past * hs + i];
        }
      a.capacity = past + 1, a.past_k = prk.data(), a.past_v = prv.data();
    }
    std::vector<double> t;
    for (int r = 0; r < runs + 10; ++r) {  // the first 10 warm up
      for (size_t i = 0; i < evict.size(); i += 8) evict_sink += evict[i];
      const auto t0 = std::chrono::steady_clock::now();
      if (CachedAttention(a) != Status::kOk) {
        std::fprintf(stderr, "CachedAttention failed\n");
        return 1;
      }
      if (r >= 10) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    std::printf("past %5d: median %7.1f us, 10th percentile %7.1f us\n", past, 1e6 * t[t.size() / 2], 1e6 * t[t.size() / 10]);
  }
  return evict_sink == 42 ? 3 : 0;  // keeps the eviction reads from being optimized away
}
