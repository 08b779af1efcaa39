// The CUDA kernels' register-level conversions (cuda_bits.h) and the CUDA prepack (formats.h),
// checked on the CPU: exhaustively where the domain is small, against independent oracles.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "w4a8/cuda_bits.h"
#include "w4a8/formats.h"
#include "test_check.h"

using namespace w4a8;


static int8_t ByteOf(uint32_t v, int i) { return (int8_t)(uint8_t)(v >> (8 * i)); }

static void TestBytePerm() {
  // Cases worked out by hand from the PTX prmt description.
  CHECK(BytePerm(0x33221100u, 0x77665544u, 0x3210u) == 0x33221100u, "identity");
  CHECK(BytePerm(0x33221100u, 0x77665544u, 0x7654u) == 0x77665544u, "high word");
  CHECK(BytePerm(0x33221100u, 0x77665544u, 0x0123u) == 0x00112233u, "reverse");
  // Sign replicate: byte0 0xff -> 0xff, byte1 0x80 -> 0xff, byte2 0x00 -> 0x00.
  CHECK(BytePerm(0x000080ffu, 0, 0xa988u) == 0x00ffffffu, "sign replicate 0x%08x", BytePerm(0x000080ffu, 0, 0xa988u));
}

// Every (n, k) of a padded shape maps to one (word, nibble), and that word's position decodes back
// to the fragment coordinates the kernel assumes (B fragment: n = lane / 4, k from CudaWordNibbleK).
static void TestWordIndex() {
  const CudaPackedView v = CudaPackedShape(WeightFormat::kInt4, 200, 130, 32);
  CHECK(v.n_padded == 256 && v.k_padded == 192 && v.groups_padded == 6, "padded shape");
  std::vector<uint8_t> seen(CudaPackedCodeWords(v) * 8, 0);
  for (int32_t n = 0; n < v.n_padded; ++n) {
    for (int32_t k = 0; k < v.k_padded; ++k) {
      int nibble = -1;
      const size_t word = CudaPackedWordIndex(v, n, k, &nibble);
      CHECK(word < CudaPackedCodeWords(v) && nibble >= 0 && nibble < 8, "range n=%d k=%d", n, k);
      if (word >= CudaPackedCodeWords(v)) continue;
      seen[word * 8 + nibble]++;
      const size_t j = word % 4, lane = (word / 4) % 32, quad = (word / 128) % 4, step = word / 512;
      const size_t ksteps = v.k_padded / kCudaMmaK;
      const int32_t n_back = (int32_t)((step / ksteps) * kCudaTileN + quad * 32 + j * 8 + lane / 4);
      const int32_t k_back = (int32_t)((step % ksteps) * kCudaMmaK + CudaWordNibbleK(nibble, (int)(lane % 4)));
      CHECK(n_back == n && k_back == k, "decode n=%d k=%d -> %d %d", n, k, n_back, k_back);
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 1, "nibble %zu covered %d times", i, seen[i]);
}

static void TestUnpackInt4() {
  std::mt19937 rng(1);
  // Each nibble position with each code and zero point, the other nibbles random.
  for (int pos = 0; pos < 8; ++pos) {
    for (int code = 0; code < 16; ++code) {
      for (int zp = 0; zp < 16; ++zp) {
        uint32_t word = rng() & ~(0xfu << (4 * pos));
        word |= (uint32_t)code << (4 * pos);
        const Int8x4Pair p = UnpackInt4Word(word, (uint32_t)zp);
        for (int nib = 0; nib < 8; ++nib) {
          const int want = (int)((word >> (4 * nib)) & 0xf) - zp;
          const int got = ByteOf((nib & 1) ? p.hi : p.lo, nib >> 1);
          CHECK(got == want, "int4 word 0x%08x zp %d nibble %d: %d != %d", word, zp, nib, got, want);
        }
      }
    }
  }
}

static void TestFp4() {
  // All 2^16 combinations of four codes in one register.
  for (uint32_t c = 0; c < 0x10000u; ++c) {
    const uint32_t bytes = (c & 0xf) | ((c >> 4) & 0xf) << 8 | ((c >> 8) & 0xf) << 16 | ((c >> 12) & 0xf) << 24;
    const uint32_t ints = Fp4BytesToInt8x4Times2(bytes);
    const uint32_t fp8 = Fp4BytesToE4M3x4(bytes);
    for (int i = 0; i < 4; ++i) {
      const int code = (int)((bytes >> (8 * i)) & 0xf);
      CHECK(ByteOf(ints, i) == Fp4E2M1TimesTwo(code), "fp4 int8 0x%08x byte %d", bytes, i);
      CHECK((uint8_t)(fp8 >> (8 * i)) == Fp4E2M1ToE4M3(code), "fp4 e4m3 0x%08x byte %d", bytes, i);
    }
  }
  for (int code = 0; code < 16; ++code) {
    const float want = Fp4E2M1Value(code);
    const float got = E4M3ToFloat(Fp4E2M1ToE4M3(code));
    CHECK(got == want && std::signbit(got) == ((code & 8) != 0), "fp4 %d -> e4m3 %g != %g", code, got, want);
  }
  std::mt19937 rng(2);
  for (int t = 0; t < 100000; ++t) {
    const uint32_t word = rng();
    const Int8x4Pair p = UnpackFp4Word(word);
    for (int nib = 0; nib < 8; ++nib) {
      const int got = ByteOf((nib & 1) ? p.hi : p.lo, nib >> 1);
      CHECK(got == Fp4E2M1TimesTwo((int)((word >> (4 * nib)) & 0xf)), "fp4 word 0x%08x nibble %d", word, nib);
    }
  }
}

static void TestSmallIntToFloat() {
  // Every value of the exact range, and that a group sum of the largest group it is used for fits.
  for (int32_t v = -kSmallIntToFloatLimit; v < kSmallIntToFloatLimit; ++v)
    if (SmallIntToFloat(v) != (float)v) CHECK(false, "SmallIntToFloat(%d) = %g", v, SmallIntToFloat(v));
  CHECK(2048 * 127 * 15 < kSmallIntToFloatLimit, "group 2048 sums fit");
}

static void TestInt8ByteToFloat() {
  for (int v = 0; v < 256; ++v) {
    for (int i = 0; i < 4; ++i) {
      const uint32_t reg = 0x5a3c1e77u & ~(0xffu << (8 * i));
      const uint32_t r = reg | (uint32_t)v << (8 * i);
      CHECK(Int8x4ByteToFloat(r, i) == (float)(int8_t)v, "byte %d pos %d", v, i);
    }
  }
}

// Independent E4M3 decoder: sign, 4-bit exponent (bias 7), 3-bit mantissa, subnormals at exponent 0.
static double E4M3Oracle(int code) {
  const int e = (code >> 3) & 0xf, m = code & 7;
  const double mag = e == 0 ? std::ldexp((double)m, -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (code & 0x80) ? -mag : mag;
}

// Nearest finite E4M3 (ties to even code), saturating beyond 448.
static uint8_t FloatToE4M3Oracle(float f) {
  if (std::isnan(f)) return 0x7f;
  const double a = std::fabs((double)f);
  int best = 0;
  double best_err = a;
  for (int c = 1; c <= 0x7e; ++c) {
    const double err = std::fabs(E4M3Oracle(c) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0 && (best & 1) == 1)) { best = c; best_err = err; }
  }
  if (a > 448.0) best = 0x7e;
  return (uint8_t)((std::signbit(f) ? 0x80 : 0) | best);
}

static void TestE4M3() {
  for (int c = 0; c < 256; ++c) {
    const float f = E4M3ToFloat((uint8_t)c);
    if ((c & 0x7f) == 0x7f) { CHECK(std::isnan(f), "0x%02x is NaN", c); continue; }
    CHECK((double)f == E4M3Oracle(c), "decode 0x%02x: %g", c, f);
    CHECK(FloatToE4M3(f) == c, "round trip 0x%02x -> %02x", c, FloatToE4M3(f));
  }
  std::vector<float> probes;
  for (int c = 0; c < 0x7e; ++c) {  // midpoints between neighbours and their fp32 neighbours
    const float mid = (float)((E4M3Oracle(c) + E4M3Oracle(c + 1)) / 2);
    probes.push_back(mid);
    probes.push_back(std::nextafter(mid, 0.0f));
    probes.push_back(std::nextafter(mid, 1000.0f));
  }
  const float edges[] = {448.0f, 449.0f, 463.99f, 464.0f, 465.0f, 1e6f, 1e-10f, 0.0f, INFINITY, 1e-45f, 0.0009765625f};
  for (float e : edges) probes.push_back(e);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> wide(-500.0f, 500.0f);
  std::uniform_real_distribution<float> narrow(-0.03f, 0.03f);
  for (int i = 0; i < 200000; ++i) probes.push_back(i % 2 ? wide(rng) : narrow(rng));
  for (float p : probes) {
    for (float s : {p, -p}) {
      CHECK(FloatToE4M3(s) == FloatToE4M3Oracle(s), "encode %.9g: 0x%02x != 0x%02x", s, FloatToE4M3(s), FloatToE4M3Oracle(s));
    }
  }
  CHECK(FloatToE4M3(NAN) == 0x7f, "NaN");
  CHECK(FloatToE4M3(-INFINITY) == 0xfe, "-inf saturates");
}

static void TestScales() {
  const TokenScale zero = MakeTokenScale(0.0f, kInt8Max);
  CHECK(zero.scale == 0.0f && zero.inverse == 0.0f, "amax 0");
  CHECK(QuantizeInt8(5.0f, zero.inverse) == 0, "zero row quantizes to 0");
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (int t = 0; t < 10000; ++t) {
    const float amax = std::fabs(u(rng)) + 1e-3f;
    const TokenScale s = MakeTokenScale(amax, kInt8Max);
    CHECK(QuantizeInt8(amax, s.inverse) == 127 && QuantizeInt8(-amax, s.inverse) == -127, "amax -> 127");
    const float x = u(rng) * amax / 3.0f;
    const int q = QuantizeInt8(x, s.inverse);
    CHECK(std::fabs((double)x * s.inverse - q) <= 0.5 + 1e-6, "rounding error x=%g q=%d", x, q);
    const TokenScale f8 = MakeTokenScale(amax, kE4M3Max);
    CHECK(QuantizeE4M3(amax, f8.inverse) == 0x7e, "amax -> 448");
  }
  CHECK(QuantizeInt8(2.5f, 1.0f) == 2 && QuantizeInt8(-1.5f, 1.0f) == -2 && QuantizeInt8(0.5f, 1.0f) == 0, "ties to even");
  CHECK(QuantizeInt8(1000.0f, 1.0f) == 127 && QuantizeInt8(-1000.0f, 1.0f) == -127, "clamp");
}

// The prepack against the canonical definition, element by element, then through the register path.
static void TestPrepack(WeightFormat format, bool with_zero_points, int32_t n, int32_t k, int32_t group) {
  std::mt19937 rng((uint32_t)(n * 131 + k * 7 + group));
  const int32_t blocks = BlocksPerRow(k, group);
  std::vector<uint8_t> codes(CodeBytes(n, k, group)), zps(ZeroPointBytes(n, k, group));
  std::vector<float> scales(ScaleCount(n, k, group));
  for (auto& c : codes) c = (uint8_t)rng();
  for (auto& z : zps) z = (uint8_t)rng();
  for (auto& s : scales) s = std::ldexp((float)(rng() % 1000 + 1), -10);
  const QuantizedWeight w{format, n, k, group, codes.data(), scales.data(), with_zero_points ? zps.data() : nullptr};

  CudaPackedView v = CudaPackedShape(format, n, k, group);
  std::vector<uint32_t> pc(CudaPackedCodeWords(v));
  std::vector<float> ps(CudaPackedScaleCount(v));
  std::vector<uint8_t> pz(CudaPackedScaleCount(v));
  PackWeightForCuda(w, pc.data(), ps.data(), pz.data());
  v.codes = pc.data();
  v.scales = ps.data();
  v.zero_points = pz.data();

  int bad = 0;
  for (int32_t nn = 0; nn < v.n_padded; ++nn) {
    for (int32_t kk = 0; kk < v.k_padded; ++kk) {
      const float want = (nn < n && kk < k) ? DequantizeAt(w, nn, kk) : 0.0f;
      if (CudaPackedDequantizeAt(v, nn, kk) != want) ++bad;
    }
  }
  CHECK(bad == 0, "prepack fmt %d zp %d %dx%d g%d: %d elements differ", (int)format, with_zero_points, n, k, group, bad);

  // What one lane of the GEMM sees: word -> int8 fragment bytes, times the group scale.
  bad = 0;
  const bool fp4 = format == WeightFormat::kFp4E2M1;
  for (size_t word = 0; word < pc.size(); ++word) {
    const size_t j = word % 4, lane = (word / 4) % 32, quad = (word / 128) % 4, step = word / 512;
    const size_t ksteps = v.k_padded / kCudaMmaK;
    const int32_t nn = (int32_t)((step / ksteps) * kCudaTileN + quad * 32 + j * 8 + lane / 4);
    for (int half = 0; half < 2; ++half) {
      const int32_t k0 = (int32_t)((step % ksteps) * kCudaMmaK) + CudaWordNibbleK(half, (int)(lane % 4));
      const size_t s = (size_t)(k0 / group) * v.n_padded + nn;
      const Int8x4Pair p = fp4 ? UnpackFp4Word(pc[word]) : UnpackInt4Word(pc[word], pz[s]);
      for (int i = 0; i < 4; ++i) {
        const float got = (float)ByteOf(half ? p.hi : p.lo, i) * ps[s];
        const float want = (nn < n && k0 + i < k) ? DequantizeAt(w, nn, k0 + i) : 0.0f;
        if (got != want) ++bad;
      }
    }
  }
  CHECK(bad == 0, "fragment path fmt %d %dx%d g%d: %d elements differ", (int)format, n, k, group, bad);
  (void)blocks;
}

int main() {
  TestBytePerm();
  TestWordIndex();
  TestUnpackInt4();
  TestFp4();
  TestInt8ByteToFloat();
  TestSmallIntToFloat();
  TestE4M3();
  TestScales();
  const int32_t shapes[][2] = {{72, 160}, {1, 17}, {128, 64}, {130, 300}, {256, 512}, {33, 1000}};
  for (auto& sh : shapes) {
    for (int32_t g : {16, 32, 64, 128, 256}) {
      TestPrepack(WeightFormat::kInt4, true, sh[0], sh[1], g);
      TestPrepack(WeightFormat::kInt4, false, sh[0], sh[1], g);
      TestPrepack(WeightFormat::kFp4E2M1, false, sh[0], sh[1], g);
    }
  }
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}
