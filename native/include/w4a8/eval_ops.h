// Scoring a decoder's logits: the negative log-likelihood of target tokens (perplexity), the
// argmax of one row (greedy decoding) and a sampled token of one row. Scalar code: a [seq, vocab] window costs far less
// than the ORT run that produced it, and the scalar form is its own reference.
#pragma once
#include <cstddef>
#include <cstdint>

#include "w4a8/status.h"

namespace w4a8 {

enum class LogitsType : int { kFloat32 = 0, kFloat16 = 1 };

// For each row r < rows of a row-major [rows, vocab] logits matrix, nll_out[r] =
// logsumexp(row) - row[targets[r]], accumulated in double. *total is their sum.
// A target outside [0, vocab) gives kInvalidArgument; a non-finite row gives NaN/Inf
// in nll_out (the caller decides what a broken model means).
Status TokenNll(const void* logits, LogitsType type, size_t rows, size_t vocab, const int32_t* targets,
                double* nll_out, double* total);

// Index of the largest value of one row of `vocab` logits; ties go to the lowest index and
// NaN never wins. *index is -1 when every value is NaN (or vocab is 0).
Status RowArgmax(const void* row, LogitsType type, size_t vocab, int64_t* index);

// temperature 0 is greedy (RowArgmax); top_k 0 keeps every token; top_p 0 or 1 turns nucleus
// sampling off (llama2.c's convention).
struct SamplingParams {
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
};

// One token drawn from softmax(row / temperature), restricted to the top_k most likely tokens
// (renormalized) and then to the nucleus of mass top_p, by inverting the cumulative distribution
// at `coin` in [0, 1). With top_k = 0 this is llama2.c's sampler exactly (same float sums and
// candidate order), so the same coin picks the same token. *index is -1 when the row holds a NaN
// or is all -inf; out-of-range parameters give kInvalidArgument.
Status SampleRow(const void* row, LogitsType type, size_t vocab, const SamplingParams& params, float coin,
                 int64_t* index);

}  // namespace w4a8
