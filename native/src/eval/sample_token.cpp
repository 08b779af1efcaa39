// Sampling one token from a row of logits: temperature, then top-k, then nucleus (top-p), then
// one uniform coin inverted through the cumulative distribution. With top_k = 0 it is llama2.c's
// `sample()` step for step (float softmax in index order, the (1 - p) / (n - 1) candidate cutoff,
// candidates in descending probability with ties in index order, the same running sums), so the
// same logits and coin pick the same token as llama2.c's `run`.
#include <algorithm>
#include <cmath>
#include <vector>

#include "w4a8/eval_ops.h"
#include "w4a8/half.h"

namespace w4a8 {
namespace {

struct Candidate {
  float prob;
  int32_t index;
};

// Descending probability; equal probabilities keep index order (a stable sort on this order is
// what glibc's merge-sort qsort gives llama2.c).
bool MoreLikely(const Candidate& a, const Candidate& b) { return a.prob > b.prob; }

// Keeps the k most likely entries of `probs` (ties: lower index first), zeroes the rest and
// renormalizes, as masking the logits outside the top k before the softmax would.
void KeepTopK(std::vector<float>& probs, size_t k) {
  std::vector<Candidate> c(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) c[i] = {probs[i], (int32_t)i};
  std::nth_element(c.begin(), c.begin() + (std::ptrdiff_t)(k - 1), c.end(), [](const Candidate& a, const Candidate& b) {
    return a.prob > b.prob || (a.prob == b.prob && a.index < b.index);
  });
  std::vector<uint8_t> keep(probs.size(), 0);
  for (size_t i = 0; i < k; ++i) keep[(size_t)c[i].index] = 1;
  float sum = 0.0f;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (!keep[i]) probs[i] = 0.0f;
    sum += probs[i];
  }
  for (float& p : probs) p /= sum;
}

int64_t SampleAll(const std::vector<float>& probs, float coin) {
  float cdf = 0.0f;
  for (size_t i = 0; i < probs.size(); ++i) {
    cdf += probs[i];
    if (coin < cdf) return (int64_t)i;
  }
  return (int64_t)probs.size() - 1;  // rounding left the sum short of the coin
}

int64_t SampleNucleus(const std::vector<float>& probs, float top_p, float coin) {
  const size_t n = probs.size();
  // llama2.c's pruning: entries below (1 - p) / (n - 1) are left out before the sort (the nucleus
  // rarely reaches them, and the same candidates give the same cumulative sums as llama2.c).
  const float cutoff = (1.0f - top_p) / (float)(n - 1);
  std::vector<Candidate> c;
  for (size_t i = 0; i < n; ++i)
    if (probs[i] >= cutoff) c.push_back({probs[i], (int32_t)i});
  if (c.empty()) {
    // Possible only when n * p < 1 (a tiny vocabulary): the nucleus is then the most likely entry.
    const size_t best = (size_t)(std::max_element(probs.begin(), probs.end()) - probs.begin());
    c.push_back({probs[best], (int32_t)best});
  }
  std::stable_sort(c.begin(), c.end(), MoreLikely);
  float cumulative = 0.0f;
  size_t last = c.size() - 1;
  for (size_t i = 0; i < c.size(); ++i) {
    cumulative += c[i].prob;
    if (cumulative > top_p) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; ++i) {
    cdf += c[i].prob;
    if (r < cdf) return c[i].index;
  }
  return c[last].index;
}

}  // namespace

Status SampleRow(const void* row, LogitsType type, size_t vocab, const SamplingParams& params, float coin,
                 int64_t* index) {
  if (!index || !row || vocab == 0) return Status::kInvalidArgument;
  if (type != LogitsType::kFloat32 && type != LogitsType::kFloat16) return Status::kInvalidArgument;
  if (!(params.temperature >= 0.0f) || !std::isfinite(params.temperature)) return Status::kInvalidArgument;
  if (params.top_k < 0 || !(params.top_p >= 0.0f && params.top_p <= 1.0f)) return Status::kInvalidArgument;
  if (!(coin >= 0.0f && coin < 1.0f)) return Status::kInvalidArgument;
  if (params.temperature == 0.0f) return RowArgmax(row, type, vocab, index);

  std::vector<float> probs(vocab);
  for (size_t v = 0; v < vocab; ++v) {
    const float x = type == LogitsType::kFloat32 ? static_cast<const float*>(row)[v]
                                                 : HalfToFloat(static_cast<const uint16_t*>(row)[v]);
    if (std::isnan(x)) {  // no distribution to sample from
      *index = -1;
      return Status::kOk;
    }
    probs[v] = x / params.temperature;
  }
  float max_value = probs[0];
  for (size_t v = 1; v < vocab; ++v) max_value = std::max(max_value, probs[v]);
  if (std::isinf(max_value)) {
    // +inf logits: the distribution is all on them (the first, as argmax would pick); -inf everywhere: none.
    if (max_value < 0) {
      *index = -1;
      return Status::kOk;
    }
    for (size_t v = 0; v < vocab; ++v)
      if (probs[v] == max_value) {
        *index = (int64_t)v;
        return Status::kOk;
      }
  }
  float sum = 0.0f;
  for (size_t v = 0; v < vocab; ++v) {
    probs[v] = std::exp(probs[v] - max_value);
    sum += probs[v];
  }
  for (float& p : probs) p /= sum;

  if (params.top_k > 0 && (size_t)params.top_k < vocab) KeepTopK(probs, (size_t)params.top_k);
  if (params.top_p <= 0.0f || params.top_p >= 1.0f || vocab == 1) {
    *index = SampleAll(probs, coin);
  } else {
    *index = SampleNucleus(probs, params.top_p, coin);
  }
  return Status::kOk;
}

}  // namespace w4a8
