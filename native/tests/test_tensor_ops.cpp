// The nibble transpose (tiled, and its scalar definition) against a naive unpack -> transpose ->
// repack written here from the ONNX INT4 packing rule, over random odd shapes (tile edges, odd
// element counts, unused packed columns, sign flip); the element-wise division and reciprocal
// against a plain loop, bit for bit, specials included; the factor product (GemmF32, plain and
// transposed) against its fp64 definition on odd shapes. Prints its seed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "test_check.h"
#include "w4a8/tensor_ops.h"

using namespace w4a8;

static std::vector<uint8_t> NaiveTranspose(const std::vector<uint8_t>& packed, size_t rows, size_t packed_cols,
                                           size_t valid_cols, bool flip) {
  std::vector<int> values;  // the transposed int4 elements, in output order
  for (size_t c = 0; c < valid_cols; ++c)
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t byte = packed[r * packed_cols + c / 2];
      int q = (c % 2 == 0) ? (byte & 15) : (byte >> 4);
      if (flip) q = (q - 8) & 15;  // offset-8 code -> two's complement int4 bits
      values.push_back(q);
    }
  if (values.size() % 2 == 1) values.push_back(0);  // ONNX: an odd count pads the last nibble with 0
  std::vector<uint8_t> out(values.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = (uint8_t)(values[2 * i] | (values[2 * i + 1] << 4));
  return out;
}

static void TestNibbles(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  struct Shape {
    size_t rows, packed_cols, valid_cols;
  };
  std::vector<Shape> shapes = {{1, 1, 1}, {1, 1, 2}, {3, 1, 1}, {5, 3, 5}, {7, 4, 7}, {63, 33, 65}, {64, 32, 64},
                               {65, 32, 64}, {129, 67, 133}, {31, 100, 199}, {257, 9, 17}};
  std::uniform_int_distribution<size_t> dim(1, 300);
  for (int i = 0; i < 12; ++i) {
    const size_t rows = dim(rng), packed_cols = dim(rng) / 2 + 1;
    const size_t valid = 2 * packed_cols - (rng() % 2) - (rng() % 3 == 0 ? packed_cols / 2 : 0);
    shapes.push_back({rows, packed_cols, valid});
  }
  int checked = 0;
  for (const Shape& s : shapes) {
    std::vector<uint8_t> packed(s.rows * s.packed_cols);
    for (auto& b : packed) b = (uint8_t)byte(rng);
    for (bool flip : {false, true}) {
      const std::vector<uint8_t> want = NaiveTranspose(packed, s.rows, s.packed_cols, s.valid_cols, flip);
      CHECK(want.size() == TransposedNibbleBytes(s.rows, s.valid_cols), "byte count");
      std::vector<uint8_t> fast(want.size(), 0xa5), ref(want.size(), 0x5a);  // garbage: every byte must be written
      CHECK(TransposeNibbles(packed.data(), s.rows, s.packed_cols, s.valid_cols, flip, fast.data()) == Status::kOk, "fast");
      CHECK(TransposeNibblesRef(packed.data(), s.rows, s.packed_cols, s.valid_cols, flip, ref.data()) == Status::kOk, "ref");
      CHECK(ref == want, "reference %zux%zu (valid %zu, flip %d) differs from the naive transpose", s.rows, s.packed_cols,
            s.valid_cols, (int)flip);
      CHECK(fast == want, "tiled %zux%zu (valid %zu, flip %d) differs from the naive transpose", s.rows, s.packed_cols,
            s.valid_cols, (int)flip);
      ++checked;
    }
  }
  std::printf("nibble transpose: %d shape/flip cases\n", checked);
  std::vector<uint8_t> buf(64);
  CHECK(TransposeNibbles(buf.data(), 4, 4, 9, false, buf.data() + 32) == Status::kInvalidArgument, "validCols > 2 * packedCols");
  CHECK(TransposeNibbles(buf.data(), 8, 4, 8, false, buf.data() + 8) == Status::kInvalidArgument, "overlap refused");
  CHECK(TransposeNibbles(nullptr, 0, 4, 8, false, nullptr) == Status::kOk, "empty");
}

static void TestVectorOps(std::mt19937_64& rng) {
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t n : {1, 7, 33, 1001, 4099}) {
    std::vector<float> a(n), b(n), q(n), r(n);
    std::uniform_int_distribution<uint32_t> bits;
    for (size_t i = 0; i < n; ++i) {
      // Any bit pattern (NaN, Inf, denormals, zeros included), and every eighth an ordinary value.
      uint32_t ua = bits(rng), ub = bits(rng);
      std::memcpy(&a[i], &ua, 4);
      std::memcpy(&b[i], &ub, 4);
      if (i % 8 == 0) {
        a[i] = (float)(int)(rng() % 2001 - 1000) / 7.0f;
        b[i] = (float)(int)(rng() % 2001 - 1000) / 3.0f;
      }
    }
    if (n > 4) {
      a[1] = 0.0f, b[1] = 0.0f;   // NaN
      a[2] = -1.0f, b[2] = 0.0f;  // -inf
      a[3] = inf, b[3] = inf;     // NaN
    }
    CHECK(DivideF32(a.data(), b.data(), q.data(), n) == Status::kOk, "divide");
    CHECK(ReciprocalF32(a.data(), r.data(), n) == Status::kOk, "reciprocal");
    int bad = 0;
    for (size_t i = 0; i < n; ++i) {
      const volatile float want_q = a[i] / b[i], want_r = 1.0f / a[i];
      const float wq = want_q, wr = want_r;
      const bool same_q = std::memcmp(&wq, &q[i], 4) == 0 || (std::isnan(wq) && std::isnan(q[i]));
      const bool same_r = std::memcmp(&wr, &r[i], 4) == 0 || (std::isnan(wr) && std::isnan(r[i]));
      if (!same_q || !same_r) ++bad;
    }
    CHECK(bad == 0, "n=%zu: %d values differ from the plain loop", n, bad);
    // In place.
    std::vector<float> inplace = a;
    CHECK(DivideF32(inplace.data(), b.data(), inplace.data(), n) == Status::kOk, "in place");
    CHECK(std::memcmp(inplace.data(), q.data(), 4 * n) == 0 || bad, "in-place divide differs");
  }
  std::vector<float> buf(16, 1.0f);
  CHECK(DivideF32(buf.data(), buf.data(), buf.data() + 1, 8) == Status::kInvalidArgument, "shifted overlap refused");
}

static void TestMatrixProduct(std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  struct Shape {
    size_t rows, rank, cols;
  };
  for (Shape sh : std::vector<Shape>{{1, 1, 1}, {8, 2, 4}, {3, 43, 8}, {17, 5, 33}, {64, 7, 129}}) {
    std::vector<float> l(sh.rows * sh.rank), r(sh.rank * sh.cols);
    for (auto& v : l) v = u(rng);
    for (auto& v : r) v = u(rng);
    for (bool t : {false, true}) {
      std::vector<float> got(sh.rows * sh.cols), want(got.size());
      const float alpha = 0.75f;
      CHECK(MatrixProductF32(l.data(), r.data(), sh.rows, sh.rank, sh.cols, alpha, t, got.data()) == Status::kOk, "product");
      CHECK(MatrixProductF32Ref(l.data(), r.data(), sh.rows, sh.rank, sh.cols, alpha, t, want.data()) == Status::kOk, "ref");
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs((double)got[i] - want[i]) / (1.0 + std::fabs(want[i])));
      CHECK(worst < 1e-5, "%zux%zux%zu transpose %d: worst relative difference %.3g", sh.rows, sh.rank, sh.cols, (int)t, worst);
    }
  }
  std::vector<float> buf(64, 1.0f);
  CHECK(MatrixProductF32(buf.data(), buf.data() + 16, 4, 4, 4, 1.0f, false, buf.data() + 8) == Status::kInvalidArgument, "overlap refused");
  CHECK(MatrixProductF32(buf.data(), buf.data(), 0, 4, 4, 1.0f, false, buf.data() + 32) == Status::kInvalidArgument, "empty refused");
}

int main() {
  const uint64_t seed = std::getenv("W4A8_TEST_SEED") ? std::strtoull(std::getenv("W4A8_TEST_SEED"), nullptr, 10) : 20261205;
  std::printf("seed %llu (W4A8_TEST_SEED overrides)\n", (unsigned long long)seed);
  std::mt19937_64 rng(seed);
  TestNibbles(rng);
  TestVectorOps(rng);
  TestMatrixProduct(rng);
  return Finish();
}
