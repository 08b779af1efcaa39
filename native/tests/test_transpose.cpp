// TransposeF32 (blocked) against TransposeF32Ref on odd shapes around the tile size, plus
// the transpose-twice identity and the rejection of overlapping buffers.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "w4a8/tensor_ops.h"

int main() {
  using namespace w4a8;
  std::mt19937 gen(1234);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  int failures = 0;
  const size_t shapes[][2] = {{1, 1}, {1, 37}, {37, 1}, {31, 33}, {32, 32}, {33, 65}, {64, 48}, {100, 7}, {257, 129}};
  for (const auto& s : shapes) {
    const size_t rows = s[0], cols = s[1];
    std::vector<float> src(rows * cols), fast(rows * cols), ref(rows * cols), back(rows * cols);
    for (float& v : src) v = dist(gen);
    if (TransposeF32(src.data(), fast.data(), rows, cols) != Status::kOk) ++failures;
    if (TransposeF32Ref(src.data(), ref.data(), rows, cols) != Status::kOk) ++failures;
    if (std::memcmp(fast.data(), ref.data(), src.size() * sizeof(float)) != 0) {
      ++failures;
      std::printf("mismatch at %zux%zu\n", rows, cols);
    }
    if (ref[0] != src[0] || (cols > 1 && ref[rows] != src[1])) { ++failures; std::printf("ref wrong at %zux%zu\n", rows, cols); }
    TransposeF32(fast.data(), back.data(), cols, rows);
    if (std::memcmp(back.data(), src.data(), src.size() * sizeof(float)) != 0) { ++failures; std::printf("round trip %zux%zu\n", rows, cols); }
  }
  std::vector<float> buf(64);
  if (TransposeF32(buf.data(), buf.data() + 8, 4, 8) != Status::kInvalidArgument) { ++failures; std::puts("overlap accepted"); }
  std::printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
