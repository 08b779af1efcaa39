// Shared helpers of the CPU W4A8 GEMM tests: random canonical weights and activations, bitwise compare.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "w4a8/cpu_kernels.h"
#include "w4a8/formats.h"

namespace w4a8::test {

enum class WeightKind { kInt4Symmetric, kInt4Asymmetric, kFp4 };

inline const char* WeightKindName(WeightKind kind) {
  switch (kind) {
    case WeightKind::kInt4Symmetric: return "int4-sym";
    case WeightKind::kInt4Asymmetric: return "int4-asym";
    case WeightKind::kFp4: return "fp4";
  }
  return "?";
}

// A canonical weight with random codes (the padded tail of the last group gets random codes too: the
// kernels must never read it), positive random scales and random zero points.
struct RandomWeight {
  WeightKind kind;
  int32_t n, k, group_size;
  std::vector<uint8_t> codes, zero_points;
  std::vector<float> scales;

  RandomWeight(WeightKind kind_, int32_t n_, int32_t k_, int32_t group_size_, std::mt19937& rng)
      : kind(kind_), n(n_), k(k_), group_size(group_size_) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.01f, 0.1f);
    codes.resize(CodeBytes(n, k, group_size));
    for (auto& c : codes) c = (uint8_t)byte(rng);
    scales.resize(ScaleCount(n, k, group_size));
    for (auto& s : scales) s = scale(rng);
    if (kind == WeightKind::kInt4Asymmetric) {
      zero_points.resize(ZeroPointBytes(n, k, group_size));
      for (auto& z : zero_points) z = (uint8_t)byte(rng);
    }
  }

  QuantizedWeight view() const {
    return QuantizedWeight{kind == WeightKind::kFp4 ? WeightFormat::kFp4E2M1 : WeightFormat::kInt4, n, k, group_size,
                           codes.data(), scales.data(), zero_points.empty() ? nullptr : zero_points.data()};
  }
};

// Activations: uniform in [-1, 1] with a few outliers, never all zeros.
inline std::vector<float> RandomActivations(int32_t m, int32_t k, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 31);
  std::vector<float> x((size_t)m * k);
  for (auto& v : x) v = pick(rng) == 0 ? 8.0f * u(rng) : u(rng);
  x[0] = 0.75f;  // at least one non-zero
  return x;
}

inline std::vector<float> RandomBias(int32_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> b(n);
  for (auto& v : b) v = u(rng);
  return b;
}

// Index of the first element whose bits differ, or -1.
inline int64_t FirstBitDifference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return (int64_t)i;
  }
  return -1;
}

}  // namespace w4a8::test
