// Per-layer calibration statistics, accumulated batch by batch with bounded memory:
// per-input-channel sum|x| and max|x|, the Hessian X^T X (optional, fp32 or fp64 accumulators),
// the row count, and a reservoir sample of up to `sample_rows` rows (Algorithm R with a seeded
// splitmix64 stream: the sample depends only on the seed and the sequence of rows, not on batching).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "w4a8/status.h"

namespace w4a8 {

enum class HessianMode : int32_t { kNone = 0, kFloat32 = 1, kFloat64 = 2 };

struct CalibStatsConfig {
  int32_t k = 0;               // input channels
  int32_t sample_rows = 4096;  // reservoir capacity (0 = no sample)
  uint64_t seed = 0;
  HessianMode hessian = HessianMode::kFloat64;
};

class CalibStats {
 public:
  // kInvalidArgument for k <= 0 or sample_rows < 0; kOutOfMemory when the buffers cannot be allocated.
  static Status Create(const CalibStatsConfig& cfg, std::unique_ptr<CalibStats>* out);

  // Adds `rows` rows of K values. A batch holding NaN/Inf is rejected whole (kNumericalError) and
  // leaves the statistics unchanged. Thread-safe (calls are serialised; order defines the sample).
  Status AddRows(const float* x, int64_t rows, int threads = 0);
  Status AddRowsHalf(const uint16_t* x, int64_t rows, int threads = 0);  // IEEE fp16 bits

  const CalibStatsConfig& config() const { return cfg_; }
  int64_t rows() const;
  int64_t sample_count() const;  // min(rows, sample_rows)
  size_t bytes() const;          // memory held

  void MeanAbs(float* out) const;  // [K]; zeros before any row
  void MaxAbs(float* out) const;   // [K]
  // Full symmetric Hessian sum_rows x^T x [K][K]; kUnsupported when built without one.
  Status HessianF64(double* out) const;
  Status HessianF32(float* out) const;
  void Sample(float* out) const;   // [sample_count][K], reservoir slot order

 private:
  explicit CalibStats(const CalibStatsConfig& cfg) : cfg_(cfg) {}
  Status AddChecked(const float* x, int64_t rows, int threads);
  uint64_t NextRandom();

  CalibStatsConfig cfg_;
  mutable std::mutex mutex_;
  int64_t rows_ = 0;
  uint64_t rng_state_ = 0;
  std::vector<double> sum_abs_;
  std::vector<float> max_abs_;
  std::vector<double> h64_;  // upper triangle used, [K][K]
  std::vector<float> h32_;
  std::vector<float> sample_;
  std::vector<float> tile_;  // scratch for one row block of X^T X
};

}  // namespace w4a8
