#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>
#include "w4a8/cpu_kernels.h"
namespace w4a8::cpu::w4a8k { extern int g_xnp; }
using namespace w4a8; using namespace w4a8::cpu;
static double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main() {
  struct S { int k, n, reps; } shapes[] = {{2048, 2560, 22}, {2048, 2048, 22}, {2048, 11264, 22}, {5632, 2048, 22}, {2048, 32000, 1}};
  const int variants[] = {1, 2, 4};
  std::mt19937 rng(1);
  // One rotation of all shapes, 22 layers' worth, like a decode step: every weight read once per step.
  std::vector<std::unique_ptr<PackedWeight>> ws; std::vector<int> shape_of;
  for (int si = 0; si < 5; ++si) {
    const S& s = shapes[si]; const int g = 128;
    std::vector<uint8_t> codes(CodeBytes(s.n, s.k, g)), zps(ZeroPointBytes(s.n, s.k, g));
    std::vector<float> scales(ScaleCount(s.n, s.k, g));
    for (auto& c : codes) c = (uint8_t)rng(); for (auto& z : zps) z = (uint8_t)rng();
    for (auto& x : scales) x = 0.01f + 0.001f * (float)(rng() % 64);
    const QuantizedWeight w{WeightFormat::kInt4, s.n, s.k, g, codes.data(), scales.data(), zps.data()};
    for (int r = 0; r < s.reps; ++r) { std::unique_ptr<PackedWeight> p; Prepack(w, Isa::kAvx512Vnni, &p); ws.push_back(std::move(p)); shape_of.push_back(si); }
  }
  std::vector<float> x(5632), y(32000);
  for (auto& v : x) v = (float)((int)(rng() % 2001) - 1000) / 1000.0f;
  const int rounds = 15;
  std::vector<std::vector<double>> step(3), per_shape(15);
  for (int r = 0; r < rounds + 1; ++r) {
    for (int vi = 0; vi < 3; ++vi) {
      w4a8k::g_xnp = variants[vi];
      double t_shape[5] = {0};
      const double t0 = Now();
      for (size_t i = 0; i < ws.size(); ++i) {
        GemmArgs a; a.m = 1; a.x = x.data(); a.y = y.data();
        const double c0 = Now();
        GemmW4A8WithIsa(*ws[i], Isa::kAvx512Vnni, a);
        t_shape[shape_of[i]] += Now() - c0;
      }
      if (r > 0) { step[vi].push_back(Now() - t0); for (int s = 0; s < 5; ++s) per_shape[vi * 5 + s].push_back(t_shape[s]); }
    }
  }
  auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  for (int vi = 0; vi < 3; ++vi) {
    std::printf("streams %d: step %.2f ms (median of %d); per shape (x reps):", variants[vi], 1e3 * med(step[vi]), rounds);
    for (int s = 0; s < 5; ++s) std::printf(" %.3f", 1e3 * med(per_shape[vi * 5 + s]));
    std::printf("\n");
  }
}
