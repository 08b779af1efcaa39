// Calibration statistics accumulator. The Hessian update is the hot loop: X^T X for a batch is
// computed one 256-row block of H at a time (upper triangle only, packed fp32 GEMM), then added
// into the fp32/fp64 accumulator; the block scratch stays small even for K = 11008.
#include "linalg/parallel.h"
#include "w4a8/calib_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "w4a8/half.h"
#include "w4a8/linalg.h"

namespace w4a8 {
namespace {
constexpr int64_t kTileRows = 256;
}

Status CalibStats::Create(const CalibStatsConfig& cfg, std::unique_ptr<CalibStats>* out) {
  if (!out || cfg.k <= 0 || cfg.sample_rows < 0) return Status::kInvalidArgument;
  if (cfg.hessian != HessianMode::kNone && cfg.hessian != HessianMode::kFloat32 && cfg.hessian != HessianMode::kFloat64)
    return Status::kInvalidArgument;
  try {
    std::unique_ptr<CalibStats> s(new CalibStats(cfg));
    const size_t k = (size_t)cfg.k;
    s->sum_abs_.assign(k, 0.0);
    s->max_abs_.assign(k, 0.0f);
    if (cfg.hessian == HessianMode::kFloat64) s->h64_.assign(k * k, 0.0);
    if (cfg.hessian == HessianMode::kFloat32) s->h32_.assign(k * k, 0.0f);
    s->sample_.reserve(std::min<size_t>((size_t)cfg.sample_rows, 1 << 16) * k);
    s->rng_state_ = cfg.seed ^ 0x5851f42d4c957f2dull;
    *out = std::move(s);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

uint64_t CalibStats::NextRandom() {  // splitmix64
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Status CalibStats::AddRows(const float* x, int64_t rows, int threads) {
  if (rows < 0 || (rows > 0 && !x)) return Status::kInvalidArgument;
  const size_t count = (size_t)rows * cfg_.k;
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(x[i])) return Status::kNumericalError;
  std::lock_guard<std::mutex> lock(mutex_);
  return StatusFromExceptions([&] { return AddChecked(x, rows, threads); });
}

Status CalibStats::AddRowsHalf(const uint16_t* x, int64_t rows, int threads) {
  if (rows < 0 || (rows > 0 && !x)) return Status::kInvalidArgument;
  return StatusFromExceptions([&] {
    std::vector<float> f((size_t)rows * cfg_.k);
    HalfToFloatArray(x, f.data(), f.size());
    return AddRows(f.data(), rows, threads);
  });
}

Status CalibStats::AddChecked(const float* x, int64_t rows, int threads) {
  const int64_t k = cfg_.k;
  if (rows == 0) return Status::kOk;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * k;
    for (int64_t i = 0; i < k; ++i) {
      const float a = std::fabs(row[i]);
      sum_abs_[i] += a;
      max_abs_[i] = std::max(max_abs_[i], a);
    }
    // Reservoir (Algorithm R): row number `seen` replaces slot j < capacity with probability capacity / (seen + 1).
    const int64_t seen = rows_ + r;
    const int64_t cap = cfg_.sample_rows;
    if (cap == 0) continue;
    if (seen < cap) {
      sample_.insert(sample_.end(), row, row + k);
    } else {
      const uint64_t j = (uint64_t)(((unsigned __int128)NextRandom() * (uint64_t)(seen + 1)) >> 64);
      if (j < (uint64_t)cap) std::copy(row, row + k, sample_.begin() + (size_t)j * k);
    }
  }
  rows_ += rows;
  if (cfg_.hessian == HessianMode::kNone) return Status::kOk;
  const int t = ChunkCount(threads);
  tile_.resize((size_t)kTileRows * k);
  for (int64_t i0 = 0; i0 < k; i0 += kTileRows) {
    const int64_t mb = std::min(kTileRows, k - i0);
    const int64_t cols = k - i0;  // columns i0..k-1: the upper triangle of this row block
    GemmF32(true, false, mb, cols, rows, 1.0f, x + i0, k, x + i0, k, 0.0f, tile_.data(), cols, t);
    for (int64_t r = 0; r < mb; ++r) {
      const float* src = tile_.data() + (size_t)r * cols + r;  // from the diagonal on
      const int64_t len = cols - r;
      const size_t at = (size_t)(i0 + r) * k + (i0 + r);
      if (cfg_.hessian == HessianMode::kFloat64) {
        double* dst = h64_.data() + at;
        for (int64_t c = 0; c < len; ++c) dst[c] += src[c];
      } else {
        float* dst = h32_.data() + at;
        for (int64_t c = 0; c < len; ++c) dst[c] += src[c];
      }
    }
  }
  return Status::kOk;
}

int64_t CalibStats::rows() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rows_;
}

int64_t CalibStats::sample_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::min<int64_t>(rows_, cfg_.sample_rows);
}

size_t CalibStats::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sum_abs_.size() * 8 + max_abs_.size() * 4 + h64_.size() * 8 + h32_.size() * 4 + sample_.capacity() * 4 +
         tile_.capacity() * 4;
}

void CalibStats::MeanAbs(float* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int32_t i = 0; i < cfg_.k; ++i) out[i] = rows_ > 0 ? (float)(sum_abs_[i] / (double)rows_) : 0.0f;
}

void CalibStats::MaxAbs(float* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::copy(max_abs_.begin(), max_abs_.end(), out);
}

Status CalibStats::HessianF64(double* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t k = cfg_.k;
  if (cfg_.hessian == HessianMode::kNone) return Status::kUnsupported;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      const double v = cfg_.hessian == HessianMode::kFloat64 ? h64_[(size_t)i * k + j] : (double)h32_[(size_t)i * k + j];
      out[(size_t)i * k + j] = v;
      out[(size_t)j * k + i] = v;
    }
  return Status::kOk;
}

Status CalibStats::HessianF32(float* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t k = cfg_.k;
  if (cfg_.hessian == HessianMode::kNone) return Status::kUnsupported;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      const float v = cfg_.hessian == HessianMode::kFloat64 ? (float)h64_[(size_t)i * k + j] : h32_[(size_t)i * k + j];
      out[(size_t)i * k + j] = v;
      out[(size_t)j * k + i] = v;
    }
  return Status::kOk;
}

void CalibStats::Sample(float* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::copy(sample_.begin(), sample_.end(), out);
}

}  // namespace w4a8
