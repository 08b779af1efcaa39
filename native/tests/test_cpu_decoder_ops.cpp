// CachedAttention on every ISA against its double-precision reference (odd shapes, grouped-query
// heads, padding, a past and none, packed q|k|v rows, prompts long enough for the GEMM path, decode steps
// through the scores and context kernels with rows, keys and head sizes left over by their tiles), the cache
// in one shared buffer, Hugging Face's rotary pairs (i, i + hs/2) as the interleaved ones reordered,
// SwiGLU, hand-checked cases that pin its semantics (rotary pairs, causality, the masked query), and
// RmsNorm against a direct computation.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "w4a8/cpu_kernels.h"
#include "w4a8/decoder_ops.h"
#include "test_check.h"

using namespace w4a8;
using namespace w4a8::cpu;

namespace {

std::vector<float> Random(std::mt19937& rng, size_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Case {
  int32_t batch, seq, past, heads, kv_heads, hs;
  bool packed, padding;
};

struct Buffers {
  std::vector<float> qkv, k, v, pk, pv, cos, sin, out, prk, prv;
  std::vector<int64_t> mask, pos;
  AttentionArgs args;
};

Buffers Make(std::mt19937& rng, const Case& c) {
  Buffers b;
  const int32_t rows = c.past + c.seq + 5, half = c.hs / 2;
  const int64_t qw = (int64_t)c.heads * c.hs, kw = (int64_t)c.kv_heads * c.hs, total = c.past + c.seq;
  const int64_t qs = c.packed ? qw + 2 * kw : qw;
  b.qkv = Random(rng, (size_t)c.batch * c.seq * qs);
  if (!c.packed) {
    b.k = Random(rng, (size_t)c.batch * c.seq * kw);
    b.v = Random(rng, (size_t)c.batch * c.seq * kw);
  }
  b.pk = Random(rng, (size_t)c.batch * kw * c.past + 1);
  b.pv = Random(rng, (size_t)c.batch * kw * c.past + 1);
  b.cos.resize((size_t)rows * half);
  b.sin.resize((size_t)rows * half);
  for (int32_t p = 0; p < rows; ++p)
    for (int32_t i = 0; i < half; ++i) {
      const double a = p * std::pow(10000.0, -2.0 * i / c.hs);
      b.cos[(size_t)p * half + i] = (float)std::cos(a);
      b.sin[(size_t)p * half + i] = (float)std::sin(a);
    }
  b.mask.assign((size_t)c.batch * total, 1);
  b.pos.resize((size_t)c.batch * c.seq);
  for (int32_t bb = 0; bb < c.batch; ++bb) {
    // Batch row 1 with padding: its first two keys hidden, positions counted from the first real one.
    const int32_t pad = c.padding && bb == 1 ? std::min<int32_t>(2, (int32_t)total - 1) : 0;
    for (int32_t j = 0; j < pad; ++j) b.mask[(size_t)bb * total + j] = 0;
    for (int32_t s = 0; s < c.seq; ++s) b.pos[(size_t)bb * c.seq + s] = std::max<int64_t>(0, c.past + s - pad);
  }
  b.out.assign((size_t)c.batch * c.seq * qw, -1.0f);
  b.prk.assign((size_t)c.batch * kw * total, -1.0f);
  b.prv.assign((size_t)c.batch * kw * total, -1.0f);
  AttentionArgs& a = b.args;
  a.batch = c.batch;
  a.seq = c.seq;
  a.past = c.past;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.head_size = c.hs;
  a.rope_rows = rows;
  a.q_stride = qs;
  a.kv_stride = c.packed ? qs : kw;
  a.scale = (float)(1.0 / std::sqrt((double)c.hs));
  a.q = b.qkv.data();
  a.k = c.packed ? b.qkv.data() + qw : b.k.data();
  a.v = c.packed ? b.qkv.data() + qw + kw : b.v.data();
  a.past_k = b.pk.data();
  a.past_v = b.pv.data();
  a.mask = b.mask.data();
  a.positions = b.pos.data();
  a.cos = b.cos.data();
  a.sin = b.sin.data();
  a.out = b.out.data();
  a.present_k = b.prk.data();
  a.present_v = b.prv.data();
  return b;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

void CheckAgainstReference(std::mt19937& rng, Isa isa, const Case& c) {
  Buffers fast = Make(rng, c);
  Buffers ref = fast;  // same inputs; the copy's args point into its own buffers
  ref.args = fast.args;
  const auto rebase = [&](const float* p, const std::vector<float>& from, std::vector<float>& to) -> const float* {
    return p ? to.data() + (p - from.data()) : nullptr;
  };
  ref.args.q = rebase(fast.args.q, fast.qkv, ref.qkv);
  ref.args.k = c.packed ? rebase(fast.args.k, fast.qkv, ref.qkv) : ref.k.data();
  ref.args.v = c.packed ? rebase(fast.args.v, fast.qkv, ref.qkv) : ref.v.data();
  ref.args.past_k = ref.pk.data();
  ref.args.past_v = ref.pv.data();
  ref.args.mask = ref.mask.data();
  ref.args.positions = ref.pos.data();
  ref.args.cos = ref.cos.data();
  ref.args.sin = ref.sin.data();
  ref.args.out = ref.out.data();
  ref.args.present_k = ref.prk.data();
  ref.args.present_v = ref.prv.data();
  const Status s1 = CachedAttention(fast.args, isa), s2 = CachedAttentionReference(ref.args);
  CHECK(s1 == Status::kOk && s2 == Status::kOk, "%s: status %s / %s", IsaName(isa), StatusName(s1), StatusName(s2));
  const double d = MaxAbsDiff(fast.out, ref.out);
  CHECK(d < 2e-5, "%s b%d s%d p%d h%d/%d hs%d packed %d padding %d: |out - ref| %.3g", IsaName(isa), c.batch, c.seq, c.past,
        c.heads, c.kv_heads, c.hs, (int)c.packed, (int)c.padding, d);
  CHECK(fast.prk == ref.prk && fast.prv == ref.prv, "%s: present key/value differ from the reference's", IsaName(isa));
  // The past is copied unchanged.
  if (c.past > 0) CHECK(fast.prv[0] == fast.pv[0], "%s: present_value does not start with the past", IsaName(isa));
}

// Hugging Face's rotary pairs (i, i + hs/2), rotary_interleaved = false, defined by a property: they are
// the interleaved pairs (2i, 2i + 1) of every head's columns reordered (x[i] -> 2i, x[i + hs/2] -> 2i + 1).
// Reordering the columns of q and k the same way leaves every score, hence the output, unchanged, and
// reorders present_key's rows; present_value is untouched.
void CheckHalfRotation(std::mt19937& rng, Isa isa, const Case& c) {
  Buffers half = Make(rng, c);
  half.args.rotary_interleaved = false;
  Buffers inter = half;
  inter.args.rotary_interleaved = true;
  const int32_t hs = c.hs, h2 = hs / 2;
  // Reorders every hs-wide head segment of rows `width` wide, from column `from` on (heads of them).
  const auto reorder = [&](std::vector<float>& x, int64_t rows, int64_t width, int64_t from, int32_t heads) {
    std::vector<float> seg((size_t)hs);
    for (int64_t r = 0; r < rows; ++r)
      for (int32_t h = 0; h < heads; ++h) {
        float* p = x.data() + r * width + from + (int64_t)h * hs;
        for (int32_t i = 0; i < h2; ++i) {
          seg[(size_t)2 * i] = p[i];
          seg[(size_t)2 * i + 1] = p[i + h2];
        }
        std::copy(seg.begin(), seg.end(), p);
      }
  };
  const int64_t rows = (int64_t)c.batch * c.seq, qw = (int64_t)c.heads * hs, kw = (int64_t)c.kv_heads * hs;
  const int64_t qs = c.packed ? qw + 2 * kw : qw;
  reorder(inter.qkv, rows, qs, 0, c.heads);
  if (c.packed) reorder(inter.qkv, rows, qs, qw, c.kv_heads);
  else reorder(inter.k, rows, kw, 0, c.kv_heads);
  reorder(inter.pk, (int64_t)c.batch * c.kv_heads * c.past, hs, 0, 1);  // the past rows are stored rotated, reordered alike
  Buffers* bufs[] = {&half, &inter};
  for (Buffers* b : bufs) {
    AttentionArgs& a = b->args;
    a.q = b->qkv.data();
    a.k = c.packed ? b->qkv.data() + qw : b->k.data();
    a.v = c.packed ? b->qkv.data() + qw + kw : b->v.data();
    a.past_k = b->pk.data();
    a.past_v = b->pv.data();
    a.mask = b->mask.data();
    a.positions = b->pos.data();
    a.cos = b->cos.data();
    a.sin = b->sin.data();
    a.out = b->out.data();
    a.present_k = b->prk.data();
    a.present_v = b->prv.data();
    const Status st = CachedAttention(a, isa);
    CHECK(st == Status::kOk, "%s half rotation: status %s", IsaName(isa), StatusName(st));
  }
  const double d = MaxAbsDiff(half.out, inter.out);
  CHECK(d < 2e-5, "%s b%d s%d p%d h%d/%d hs%d: half-pair rotation's output differs from the reordered interleaved one by %.3g", IsaName(isa),
        c.batch, c.seq, c.past, c.heads, c.kv_heads, c.hs, d);
  reorder(half.prk, (int64_t)c.batch * c.kv_heads * (c.past + c.seq), hs, 0, 1);
  CHECK(half.prk == inter.prk && half.prv == inter.prv, "%s hs%d: half-pair present key/value are not the reordered interleaved ones", IsaName(isa), c.hs);
}

// The cache in one buffer of `capacity` rows per (batch, kv head), present bound to past's memory (the
// w4a8 engine's decode loop) and separate from it: the same output as the past + seq layout, bit for
// bit (same kernels, same key order), the new rows written at [past, past + seq), and every other
// row kept (aliased) or copied from past (separate).
void CheckSharedBuffer(std::mt19937& rng, Isa isa, const Case& c) {
  Buffers std_case = Make(rng, c);
  CHECK(CachedAttention(std_case.args, isa) == Status::kOk, "%s: standard layout failed", IsaName(isa));
  const int32_t capacity = c.past + c.seq + 3, hs = c.hs;
  const int64_t slabs = (int64_t)c.batch * c.kv_heads, total = c.past + c.seq;
  std::vector<float> junk_k = Random(rng, (size_t)(slabs * capacity * hs)), junk_v = Random(rng, (size_t)(slabs * capacity * hs));
  std::vector<float> buf_k = junk_k, buf_v = junk_v;
  for (int64_t sl = 0; sl < slabs; ++sl)
    for (int64_t i = 0; i < (int64_t)c.past * hs; ++i) {
      buf_k[sl * capacity * hs + i] = std_case.pk[sl * c.past * hs + i];
      buf_v[sl * capacity * hs + i] = std_case.pv[sl * c.past * hs + i];
    }
  const std::vector<float> past_k = buf_k, past_v = buf_v;
  for (bool aliased : {true, false}) {
    std::vector<float> sep_k(buf_k.size(), -1.0f), sep_v(buf_v.size(), -1.0f), out(std_case.out.size(), -1.0f);
    std::vector<float> pk = past_k, pv = past_v;
    AttentionArgs a = std_case.args;
    a.capacity = capacity;
    a.past_k = pk.data();
    a.past_v = pv.data();
    a.present_k = aliased ? pk.data() : sep_k.data();
    a.present_v = aliased ? pv.data() : sep_v.data();
    a.out = out.data();
    CHECK(CachedAttention(a, isa) == Status::kOk, "%s: shared buffer (aliased %d) failed", IsaName(isa), (int)aliased);
    CHECK(out == std_case.out, "%s b%d s%d p%d: shared-buffer output (aliased %d) differs from the standard layout's", IsaName(isa),
          c.batch, c.seq, c.past, (int)aliased);
    const std::vector<float>& prk = aliased ? pk : sep_k;
    const std::vector<float>& prv = aliased ? pv : sep_v;
    bool rows_ok = true;
    for (int64_t sl = 0; sl < slabs; ++sl)
      for (int64_t r = 0; r < capacity; ++r)
        for (int32_t i = 0; i < hs; ++i) {
          const size_t at = (size_t)((sl * capacity + r) * hs + i);
          const float want_k = r < total ? std_case.prk[(size_t)((sl * total + r) * hs + i)] : past_k[at];
          const float want_v = r < total ? std_case.prv[(size_t)((sl * total + r) * hs + i)] : past_v[at];
          rows_ok = rows_ok && prk[at] == want_k && prv[at] == want_v;
        }
    CHECK(rows_ok, "%s b%d s%d p%d: shared-buffer present (aliased %d) is not past with the new rows written", IsaName(isa), c.batch,
          c.seq, c.past, (int)aliased);
  }
  if (c.past + c.seq < 2) return;  // capacity 0 means the standard layout
  AttentionArgs over = std_case.args;
  over.capacity = c.past + c.seq - 1;
  CHECK(CachedAttention(over, isa) == Status::kInvalidArgument, "%s: past + seq above the capacity must be refused", IsaName(isa));
}

// Pins the semantics by hand: one head of size 2, rotary pairs, causality, the fully masked query.
void HandChecked() {
  const float q[2] = {1.0f, 0.0f}, k[2] = {0.0f, 1.0f}, v[2] = {3.0f, 5.0f};
  const float pk[2] = {1.0f, 0.0f}, pv[2] = {7.0f, 11.0f};
  // Position 1 rotates by 90 degrees: (e, o) -> (-o, e).
  const float cos[2] = {1.0f, 0.0f}, sin[2] = {0.0f, 1.0f};
  const int64_t pos[1] = {1};
  int64_t mask[2] = {1, 1};
  float out[2], prk[4], prv[4];
  AttentionArgs a;
  a.batch = 1, a.seq = 1, a.past = 1, a.heads = 1, a.kv_heads = 1, a.head_size = 2, a.rope_rows = 2;
  a.q_stride = 2, a.kv_stride = 2, a.scale = 1.0f;
  a.q = q, a.k = k, a.v = v, a.past_k = pk, a.past_v = pv, a.mask = mask, a.positions = pos, a.cos = cos, a.sin = sin;
  a.out = out, a.present_k = prk, a.present_v = prv;
  CHECK(CachedAttention(a, Isa::kScalar) == Status::kOk, "hand case failed");
  // Rotated: q -> (0, 1), new key -> (-1, 0); scores: past key (1, 0) -> 0, new key -> 0: equal weights.
  CHECK(prk[2] == -1.0f && prk[3] == 0.0f, "rotated key (%g, %g), expected (-1, 0)", prk[2], prk[3]);
  CHECK(std::fabs(out[0] - 5.0f) < 1e-6f && std::fabs(out[1] - 8.0f) < 1e-6f, "equal weights: out (%g, %g), expected (5, 8)", out[0], out[1]);
  mask[0] = 0;  // the past key hidden: only the new value remains
  CHECK(CachedAttention(a, Isa::kScalar) == Status::kOk && out[0] == 3.0f && out[1] == 5.0f, "masked past: out (%g, %g)", out[0], out[1]);
  mask[1] = 0;  // nothing visible: zeros
  CHECK(CachedAttention(a, Isa::kScalar) == Status::kOk && out[0] == 0.0f && out[1] == 0.0f, "nothing visible: out (%g, %g)", out[0], out[1]);
  mask[0] = mask[1] = 1;
  const int64_t bad[1] = {2};
  a.positions = bad;
  CHECK(CachedAttention(a, Isa::kScalar) == Status::kInvalidArgument, "a position outside the rotary table must be refused");
  a.positions = pos;
  a.heads = 3;
  a.kv_heads = 2;
  CHECK(CachedAttention(a, Isa::kScalar) == Status::kInvalidArgument, "heads not a multiple of kv heads must be refused");
}

void CheckRmsNorm(std::mt19937& rng) {
  const int32_t dim = 37;
  const int64_t rows = 5;
  std::vector<float> x = Random(rng, rows * dim), r = Random(rng, rows * dim), w = Random(rng, dim), y(rows * dim), sum(rows * dim);
  CHECK(RmsNorm(x.data(), r.data(), w.data(), rows, dim, 1e-5f, y.data(), sum.data()) == Status::kOk, "RmsNorm failed");
  double worst = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    double ss = 0.0;
    for (int32_t j = 0; j < dim; ++j) ss += std::pow((double)x[i * dim + j] + r[i * dim + j], 2);
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int32_t j = 0; j < dim; ++j) {
      const double s = (double)x[i * dim + j] + r[i * dim + j];
      CHECK(sum[i * dim + j] == (float)s, "RmsNorm sum output");
      worst = std::max(worst, std::fabs(y[i * dim + j] - s * inv * w[j]));
    }
  }
  CHECK(worst < 1e-5, "RmsNorm: |y - direct| %.3g", worst);
  // Large enough to take the pool, without the residual.
  const int64_t big = 3000;
  std::vector<float> bx = Random(rng, big * dim), by(big * dim), ry(big * dim);
  CHECK(RmsNorm(bx.data(), nullptr, w.data(), big, dim, 1e-5f, by.data(), nullptr) == Status::kOk, "RmsNorm (pool) failed");
  for (int64_t i = 0; i < big; ++i) RmsNorm(bx.data() + i * dim, nullptr, w.data(), 1, dim, 1e-5f, ry.data() + i * dim, nullptr);
  CHECK(by == ry, "RmsNorm on the pool differs from row by row");
  CHECK(RmsNorm(bx.data(), nullptr, w.data(), 1, 0, 1e-5f, by.data(), nullptr) == Status::kInvalidArgument, "dim 0 must be refused");
}

// SwiGLU (and through it the polynomial exp) against double precision, tails and extremes included.
void CheckSwiGlu(std::mt19937& rng, Isa isa) {
  const int32_t f = 37;
  const int64_t rows = 3;
  std::vector<float> y = Random(rng, rows * 2 * f, 4.0f), out(rows * f);
  y[0] = -100.0f, y[1] = 100.0f, y[2] = -87.5f, y[3] = 0.0f;
  CHECK(SwiGlu(y.data(), rows, f, out.data(), isa) == Status::kOk, "%s: SwiGlu failed", IsaName(isa));
  double worst = 0.0;
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t i = 0; i < f; ++i) {
      const double g = y[r * 2 * f + i], u = y[r * 2 * f + f + i];
      const double want = g * u / (1.0 + std::exp(-g));
      worst = std::max(worst, std::fabs(out[r * f + i] - want) / std::max(1e-3, std::fabs(want)));
    }
  CHECK(worst < 2e-6, "%s: SwiGlu relative error %.3g", IsaName(isa), worst);
}

}  // namespace

int main() {
  const uint32_t seed = std::getenv("W4A8_TEST_SEED") ? (uint32_t)std::strtoul(std::getenv("W4A8_TEST_SEED"), nullptr, 10)
                                                      : std::random_device{}();
  std::printf("seed %u (W4A8_TEST_SEED=%u replays it)\n", seed, seed);
  std::mt19937 rng(seed);
  HandChecked();
  CheckRmsNorm(rng);
  const Case cases[] = {
      {1, 1, 0, 1, 1, 2, false, false},   {1, 1, 7, 4, 2, 6, false, false},   {2, 3, 5, 6, 3, 10, true, true},
      {1, 70, 0, 8, 2, 64, false, false}, {2, 1, 129, 32, 4, 64, true, true}, {3, 5, 0, 3, 1, 18, false, true},
      {2, 9, 5, 4, 2, 16, true, true},    {1, 131, 3, 2, 2, 8, false, true},
      // Decode steps through the scores / context kernels: groups of 6 and 5 heads (a 4-row tile and
      // rows left over), an odd number of keys, head sizes with 8- and 2-column tails.
      {1, 1, 10, 12, 2, 18, false, true}, {2, 1, 32, 20, 4, 24, true, false}, {1, 1, 200, 8, 1, 42, false, false},
      // AVX-512's tiles: 8 + 1 heads and 64 + 16 columns; 4 + 2 + 1 heads and two column blocks of 64;
      // one head per kv head (1 x 16 keys) with 3 keys left over; a 4-key tile cut short; 2 + 1 heads.
      {1, 1, 37, 9, 1, 80, false, false}, {1, 1, 50, 7, 1, 128, true, true}, {2, 1, 18, 3, 3, 36, false, true},
      {1, 1, 5, 4, 1, 16, false, false},  {1, 1, 21, 3, 1, 20, false, false},
  };
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (!IsaAvailable(isa)) {
      std::printf("SKIP: %s not available on this CPU (%s)\n", IsaName(isa), IsaUnavailableReason(isa));
      continue;
    }
    for (const Case& c : cases) {
      CheckAgainstReference(rng, isa, c);
      CheckSharedBuffer(rng, isa, c);
      CheckHalfRotation(rng, isa, c);
    }
    CheckSwiGlu(rng, isa);
  }
  return Finish();
}
