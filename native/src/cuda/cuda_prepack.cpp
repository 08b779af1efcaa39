// Canonical quantized weight -> the CUDA "Mma8x32" layout (formats.h). Host code with no CUDA
// dependency, so it builds into the core everywhere and is tested on the CPU (test_cuda_bits).
#include <cstring>

#include "w4a8/formats.h"

namespace w4a8 {

void PackWeightForCuda(const QuantizedWeight& w, uint32_t* codes, float* scales, uint8_t* zero_points) {
  const CudaPackedView v = CudaPackedShape(w.format, w.n, w.k, w.group_size);
  const bool fp4 = w.format == WeightFormat::kFp4E2M1;
  const int32_t blocks = BlocksPerRow(w.k, w.group_size);
  std::memset(codes, 0, CudaPackedCodeWords(v) * sizeof(uint32_t));
  std::memset(scales, 0, CudaPackedScaleCount(v) * sizeof(float));
  std::memset(zero_points, 0, CudaPackedScaleCount(v));

  for (int32_t n = 0; n < w.n; ++n) {
    for (int32_t g = 0; g < blocks; ++g) {
      const size_t s = (size_t)g * v.n_padded + n;
      // fp4 runs as the integer 2*value, so its scale is halved (exact in fp32).
      scales[s] = fp4 ? 0.5f * w.scales[(size_t)n * blocks + g] : w.scales[(size_t)n * blocks + g];
      zero_points[s] = fp4 ? 0 : (uint8_t)ZeroPointAt(w.zero_points, blocks, n, g);
    }
    // Groups past the last real one keep scale 0 and zero point 0.
    for (int32_t k = 0; k < v.k_padded; ++k) {
      int code;
      if (k < w.k) {
        code = CodeAt(w.codes, w.k, w.group_size, n, k);
      } else {
        // The neutral code makes padded weights exactly 0 (the zero point, inside a real group).
        const int32_t g = k / w.group_size;
        code = (fp4 || g >= blocks) ? 0 : ZeroPointAt(w.zero_points, blocks, n, g);
      }
      int nibble = 0;
      const size_t word = CudaPackedWordIndex(v, n, k, &nibble);
      codes[word] |= (uint32_t)code << (4 * nibble);
    }
  }
}

}  // namespace w4a8
