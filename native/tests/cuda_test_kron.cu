// Kronecker adapter on the GPU against the float64 definition written out with the explicit
// Kronecker product: y[t][p*b_rows+q] += sum_i sum_{r,s} A_i[p][r] B_i[q][s] x[t][r*b_cols+s]
// (cpu_adapters.h convention). y starts from random values (the call adds), never from zeros.
#include "cuda_test_common.cuh"

using namespace w4a8;
using namespace w4a8::cudatest;

namespace {

int g_failures = 0;
double g_worst = 0;

void RunCase(std::mt19937& rng, int32_t terms, int32_t ar, int32_t ac, int32_t br, int32_t bc, int32_t m) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int32_t n = ar * br, k = ac * bc;
  std::vector<float> a((size_t)terms * ar * ac), b((size_t)terms * br * bc), x((size_t)m * k), y0((size_t)m * n);
  for (auto* v : {&a, &b, &x, &y0})
    for (auto& e : *v) e = u(rng);
  std::vector<double> ref(y0.begin(), y0.end());
  ParallelFor(m, [&](int64_t t) {
    for (int32_t i = 0; i < terms; ++i)
      for (int32_t p = 0; p < ar; ++p)
        for (int32_t q = 0; q < br; ++q) {
          double s = 0;
          for (int32_t r = 0; r < ac; ++r)
            for (int32_t c = 0; c < bc; ++c)
              s += (double)a[((size_t)i * ar + p) * ac + r] * b[((size_t)i * br + q) * bc + c] * x[(size_t)t * k + r * bc + c];
          ref[(size_t)t * n + p * br + q] += s;
        }
  });
  DeviceArray<float> da(a.size()), db(b.size()), dx(x.size()), dy(y0.size());
  da.Upload(a.data());
  db.Upload(b.data());
  dx.Upload(x.data());
  dy.Upload(y0.data());
  const cuda::DeviceKronTerms kt{terms, ar, ac, br, bc, da.ptr, db.ptr};
  STATUS_OK(cuda::KroneckerAdapterAdd(kt, m, dx.ptr, dy.ptr, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> y(y0.size());
  dy.Download(y.data());
  const ErrorStats e = Compare(y, ref);
  g_worst = std::max(g_worst, std::max(e.rel_l2, e.max_rel));
  if (!e.Pass(1e-4)) {
    std::printf("FAIL terms %d A %dx%d B %dx%d m %d: rel_l2 %.2e max_rel %.2e nonfinite %zu\n", terms, ar, ac, br, bc,
                m, e.rel_l2, e.max_rel, e.nonfinite);
    ++g_failures;
  }
}

}  // namespace

int main() {
  SkipUnlessHopper();
  const uint32_t seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  int cases = 0;
  const int32_t shapes[][5] = {{1, 2, 3, 4, 5}, {2, 3, 5, 7, 2}, {3, 8, 8, 8, 8}, {1, 1, 16, 24, 1},
                               {4, 16, 12, 9, 20}, {2, 64, 64, 64, 64}, {1, 16, 32, 64, 128}};
  for (const auto& s : shapes)
    for (int32_t m : {1, 5, 33}) {
      RunCase(rng, s[0], s[1], s[2], s[3], s[4], m);
      ++cases;
    }
  // Too many intermediates for shared memory: refused, not run.
  cuda::DeviceKronTerms big{4, 64, 64, 64, 64, reinterpret_cast<float*>(16), reinterpret_cast<float*>(16)};
  if (cuda::KroneckerAdapterAdd(big, 1, reinterpret_cast<float*>(16), reinterpret_cast<float*>(16), nullptr) !=
      Status::kUnsupported) {
    std::puts("FAIL an oversized adapter was not refused");
    ++g_failures;
  }
  std::printf("%s: Kronecker adapter %d cases, %d failures, worst relative error %.2e\n", g_failures ? "FAIL" : "PASS",
              cases, g_failures, g_worst);
  return g_failures ? 1 : 0;
}
