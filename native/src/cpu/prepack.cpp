// Canonical QuantizedWeight -> Panel16x8 CPU layout (formats.h, "CPU prepacked layouts").
#include <sys/mman.h>

#include <cstring>
#include <new>
#include <vector>

#include "w4a8/cpu_kernels.h"

namespace w4a8::cpu {
namespace {

// Packed codes of 2 MiB or more get a fresh anonymous mapping of their own, 2 MiB aligned and rounded
// up to whole 2 MiB, advised for transparent huge pages (MADV_HUGEPAGE: the kernel's usual THP mode,
// "madvise", gives anonymous memory none otherwise) before its first touch. A decode step streams
// every weight once; with 4 KiB pages that is a TLB miss per 4 KiB read. Through the allocator they
// could land on heap pages already faulted in as 4 KiB ones (glibc raises its mmap threshold to 32 MiB
// after large frees, as a quantization makes), and the advice does not turn those into huge pages; the
// tail of an unrounded mapping stays in 4 KiB pages too (426 of 512 MiB were huge on tinyllama). The
// rounding costs at most 2 MiB of RSS per weight. Smaller codes are 64-byte aligned, so each chunk is one
// cache line (the kernels stream whole lines).
constexpr size_t kHugePage = size_t{2} << 20;

struct CodesDelete {
  size_t mapped = 0;  // bytes mmap'ed (0: from operator new, 64-byte aligned)
  void operator()(uint8_t* p) const {
    if (mapped) {
      munmap(p, mapped);
    } else {
      ::operator delete[](p, std::align_val_t(64));
    }
  }
};
using CodesBytes = std::unique_ptr<uint8_t[], CodesDelete>;

// A 2 MiB aligned anonymous mapping of `bytes` rounded up to 2 MiB (zeroed by the kernel), or nullptr.
uint8_t* MapHuge(size_t bytes, size_t* mapped) {
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  // Map one huge page more than needed, then unmap the unaligned head and the rest of the tail.
  void* raw = mmap(nullptr, rounded + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + rounded + kHugePage;
  if (end > aligned + rounded) munmap(reinterpret_cast<void*>(aligned + rounded), end - (aligned + rounded));
  uint8_t* p = reinterpret_cast<uint8_t*>(aligned);
#ifdef MADV_HUGEPAGE
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  *mapped = rounded;
  return p;
}

CodesBytes ZeroedCodes(size_t bytes) {
  size_t mapped = 0;
  if (bytes >= kHugePage) {
    if (uint8_t* p = MapHuge(bytes, &mapped)) {
      // Touch every page now (fresh mappings read as zero): the huge pages are taken at load, not in
      // the first decode step.
      std::memset(p, 0, bytes);
      return CodesBytes(p, CodesDelete{mapped});
    }
  }
  CodesBytes p(static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t(64))), CodesDelete{0});
  std::memset(p.get(), 0, bytes);
  return p;
}

class OwnedPackedWeight final : public PackedWeight {
 public:
  OwnedPackedWeight(const QuantizedWeight& w, Isa isa) {
    const int32_t blocks = BlocksPerRow(w.k, w.group_size);
    const int32_t k_padded = blocks * w.group_size;
    const int32_t n_panels = (w.n + kCpuPanelN - 1) / kCpuPanelN;
    const size_t chunks_per_panel = (size_t)k_padded / kCpuChunkK;
    codes_ = ZeroedCodes((size_t)n_panels * chunks_per_panel * kCpuChunkBytes);
    scales_.assign((size_t)n_panels * blocks * kCpuPanelN, 0.0f);
    zeros_.assign((size_t)n_panels * blocks * kCpuPanelN, 0);

    const bool fp4 = w.format == WeightFormat::kFp4E2M1;
    for (int32_t n = 0; n < w.n; ++n) {
      const int32_t panel = n / kCpuPanelN, lane = n % kCpuPanelN;
      for (int32_t b = 0; b < blocks; ++b) {
        const size_t meta = ((size_t)panel * blocks + b) * kCpuPanelN + lane;
        const float scale = w.scales[(size_t)n * blocks + b];
        scales_[meta] = fp4 ? 0.5f * scale : scale;
        zeros_[meta] = (uint8_t)(fp4 ? kCpuFp4Zero : ZeroPointAt(w.zero_points, blocks, n, b));
      }
      // Walk the canonical row byte by byte (two consecutive k per byte, blocks contiguous), so that
      // packing a 7B-parameter model stays a matter of seconds.
      uint8_t* panel_codes = codes_.get() + (size_t)panel * chunks_per_panel * kCpuChunkBytes + 4 * lane;
      const uint8_t* row = w.codes + (size_t)n * blocks * (w.group_size / 2);
      for (int32_t k = 0; k < k_padded; k += 2) {
        int lo = row[k / 2] & 0x0f, hi = row[k / 2] >> 4;
        if (k + 1 >= w.k) {  // padded k gets the neutral code: the padded weight dequantizes to exactly 0
          const int neutral = fp4 ? 0 : ZeroPointAt(w.zero_points, blocks, n, k / w.group_size);
          if (k >= w.k) lo = neutral;
          hi = neutral;
        }
        uint8_t* dst = panel_codes + (size_t)(k / kCpuChunkK) * kCpuChunkBytes + (k % 4);
        const int shift = (k % kCpuChunkK) < 4 ? 0 : 4;
        dst[0] |= (uint8_t)(lo << shift);
        dst[1] |= (uint8_t)(hi << shift);
      }
    }
    view_.format = w.format;
    view_.n = w.n;
    view_.k = w.k;
    view_.group_size = w.group_size;
    view_.blocks_per_row = blocks;
    view_.k_padded = k_padded;
    view_.n_panels = n_panels;
    view_.codes = codes_.get();
    view_.scales = scales_.data();
    view_.zeros = zeros_.data();
    isa_ = isa;
  }

 private:
  CodesBytes codes_;
  std::vector<float> scales_;
  std::vector<uint8_t> zeros_;
};

}  // namespace

Status ValidateQuantizedWeight(const QuantizedWeight& w) {
  if (w.format != WeightFormat::kInt4 && w.format != WeightFormat::kFp4E2M1) return Status::kInvalidArgument;
  if (w.n <= 0 || w.k <= 0) return Status::kInvalidArgument;
  if (w.group_size < kMinGroupSize || w.group_size > kMaxGroupSize || (w.group_size & (w.group_size - 1)) != 0) {
    return Status::kInvalidArgument;
  }
  if (!w.codes || !w.scales) return Status::kInvalidArgument;
  // Keep every packed array addressable with int32 panel/chunk arithmetic in the kernels.
  if ((int64_t)BlocksPerRow(w.k, w.group_size) * w.group_size > (int64_t)1 << 30) return Status::kInvalidArgument;
  return Status::kOk;
}

Status Prepack(const QuantizedWeight& w, Isa isa, std::unique_ptr<PackedWeight>* out) {
  if (!out) return Status::kInvalidArgument;
  out->reset();
  if ((int)isa < 0 || (int)isa > 3) return Status::kInvalidArgument;
  const Status s = ValidateQuantizedWeight(w);
  if (s != Status::kOk) return s;
  if (!IsaAvailable(isa)) return Status::kUnsupported;
  try {
    *out = std::make_unique<OwnedPackedWeight>(w, isa);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

}  // namespace w4a8::cpu
