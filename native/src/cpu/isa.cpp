// Run-time ISA detection: cpuid for the instructions, XGETBV for the OS saving their registers, and for
// AMX the Linux permission request without which the first tile instruction faults.
#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "w4a8/cpu_kernels.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace w4a8::cpu {
namespace {

struct IsaSupport {
  bool available[4] = {true, false, false, false};
  const char* reason[4] = {"", "", "", ""};
};

uint64_t Xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

bool RequestAmxPermission() {
#if defined(__linux__)
  constexpr int kArchReqXcompPerm = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr int kXfeatureXtiledata = 18;     // XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

IsaSupport Detect() {
  IsaSupport s;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) {
    for (int i = 1; i < 4; ++i) s.reason[i] = "cpuid leaf 1 unavailable";
    return s;
  }
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
  const uint64_t xcr0 = osxsave ? Xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  const bool os_tiles = (xcr0 & 0x60000) == 0x60000;
  unsigned b7 = 0, c7 = 0, d7 = 0;
  if (__get_cpuid_max(0, nullptr) >= 7) __cpuid_count(7, 0, a, b7, c7, d7);
  const bool avx2 = b7 & (1u << 5);
  const bool avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17), avx512bw = b7 & (1u << 30),
             avx512vl = b7 & (1u << 31), avx512vnni = c7 & (1u << 11);
  const bool amx_tile = d7 & (1u << 24), amx_int8 = d7 & (1u << 25);

  if (!(avx2 && fma && f16c)) s.reason[1] = "cpuid lacks AVX2/FMA/F16C";
  else if (!os_ymm) s.reason[1] = "the OS does not save YMM registers (XCR0)";
  else s.available[1] = true;

  if (!(avx512f && avx512dq && avx512bw && avx512vl && avx512vnni)) s.reason[2] = "cpuid lacks AVX512 F/DQ/BW/VL/VNNI";
  else if (!os_zmm) s.reason[2] = "the OS does not save ZMM registers (XCR0)";
  else s.available[2] = s.available[1];
  // AVX-512 present but AVX2/FMA/F16C not usable: the AVX-512 kernels also use those.
  if (!s.available[1] && !s.available[2] && !*s.reason[2]) s.reason[2] = "AVX2 unavailable";

  if (!(amx_tile && amx_int8)) s.reason[3] = "cpuid lacks AMX-TILE/AMX-INT8";
  else if (!s.available[2]) s.reason[3] = "AMX kernels also need AVX512-VNNI, which is unavailable";
  else if (!os_tiles) s.reason[3] = "the OS does not enable tile state (XCR0)";
  else if (!RequestAmxPermission()) s.reason[3] = "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) was refused";
  else s.available[3] = true;
  return s;
}

const IsaSupport& Support() {
  static const IsaSupport s = Detect();
  return s;
}

bool g_override_ignored = false;

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

bool ParseIsa(const char* name, Isa* out) {
  if (!name || !out) return false;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (std::strcmp(name, IsaName(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool IsaAvailable(Isa isa) {
  const int i = (int)isa;
  return i >= 0 && i < 4 && Support().available[i];
}

const char* IsaUnavailableReason(Isa isa) {
  const int i = (int)isa;
  if (i < 0 || i >= 4) return "unknown ISA";
  return Support().available[i] ? "" : Support().reason[i];
}

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx}) {
    if (IsaAvailable(isa)) out.push_back(isa);
  }
  return out;
}

Isa DefaultIsa() {
  static const Isa chosen = [] {
    const Isa best = AvailableIsas().back();
    const char* env = std::getenv("W4A8_ISA");
    if (!env || !*env) return best;
    Isa forced;
    if (ParseIsa(env, &forced) && IsaAvailable(forced)) return forced;
    g_override_ignored = true;
    return best;
  }();
  return chosen;
}

bool IsaOverrideIgnored() {
  DefaultIsa();
  return g_override_ignored;
}

}  // namespace w4a8::cpu
