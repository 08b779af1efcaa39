// The CPU dispatch table (src/cpu/dispatch.h): every ISA's table is complete (no null entry, a usable
// W4A8 plan at every token count) and names its ISA; AMX's borrowed entries are AVX-512's; the default
// table is DefaultIsa()'s for the kernels and for linalg. W4A8_ISA is read once per process, so each
// available ISA is also forced in a child process (this binary re-run with --expect <isa>), which
// checks that the kernels' and linalg's defaults both follow it.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu/dispatch.h"
#include "w4a8/cpu_kernels.h"
#include "w4a8/linalg.h"
#include "test_check.h"

using namespace w4a8;
using cpu::CpuDispatch;
using cpu::DispatchFor;
using cpu::Isa;

namespace {

const Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAmx};

const char* LinalgNameOf(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "generic";
    case Isa::kAvx2: return "avx2";
    default: return "avx512";
  }
}

void CheckComplete(Isa isa) {
  const CpuDispatch& d = DispatchFor(isa);
  const char* name = cpu::IsaName(isa);
  CHECK(d.isa == isa, "table for %s holds isa %d", name, (int)d.isa);
  CHECK(d.name && std::strcmp(d.name, name) == 0, "table for %s is named %s", name, d.name ? d.name : "(null)");
  CHECK(d.quantize_rows, "%s: quantize_rows is null", name);
  CHECK(d.w4a8_plan, "%s: w4a8_plan is null", name);
  CHECK(d.w4a16, "%s: w4a16 is null", name);
  CHECK(d.kron_matmul_add, "%s: kron_matmul_add is null", name);
  CHECK(d.int8_dots && d.int8_rows_add, "%s: an int8 low-rank entry is null", name);
  CHECK(d.linalg.gemm_f32 && d.linalg.gemm_f64, "%s: a linalg GEMM is null", name);
  CHECK(d.linalg.name && std::strcmp(d.linalg.name, LinalgNameOf(isa)) == 0, "%s: linalg is named %s", name,
        d.linalg.name ? d.linalg.name : "(null)");
  if (!d.w4a8_plan) return;
  for (int32_t m : {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65, 1000}) {
    const cpu::W4A8Plan p = d.w4a8_plan(m);
    CHECK(p.tile && p.panels_per_tile >= 1 && p.rows_per_tile >= 1 && p.row_multiple >= 1,
          "%s: W4A8 plan for m = %d is incomplete", name, m);
  }
}

// AMX has int8 tiles only: the table must say that everything else is AVX-512's.
void CheckAmxFallbacks() {
  const CpuDispatch& amx = DispatchFor(Isa::kAmx);
  const CpuDispatch& avx512 = DispatchFor(Isa::kAvx512Vnni);
  CHECK(amx.quantize_rows == avx512.quantize_rows, "amx must quantize activations with the avx512 rows");
  CHECK(amx.w4a16 == avx512.w4a16, "amx must run the avx512 W4A16");
  CHECK(amx.kron_matmul_add == avx512.kron_matmul_add, "amx must run the avx512 Kronecker matmul-add");
  CHECK(amx.int8_dots == avx512.int8_dots && amx.int8_rows_add == avx512.int8_rows_add, "amx must run the avx512 int8 low-rank blocks");
  CHECK(amx.linalg.gemm_f32 == avx512.linalg.gemm_f32 && amx.linalg.gemm_f64 == avx512.linalg.gemm_f64,
        "amx must map to the avx512 linalg GEMMs");
  for (int32_t m : {1, 7, 8, 15}) {
    CHECK(amx.w4a8_plan(m).tile == avx512.w4a8_plan(m).tile, "amx below 16 rows must run the avx512vnni tile (m = %d)",
          m);
  }
  CHECK(amx.w4a8_plan(16).tile != avx512.w4a8_plan(16).tile, "amx from 16 rows must run its own tile");
}

void CheckDefault(Isa expected) {
  const char* name = cpu::IsaName(expected);
  CHECK(cpu::DefaultIsa() == expected, "DefaultIsa() is %s, expected %s", cpu::IsaName(cpu::DefaultIsa()), name);
  CHECK(&cpu::Dispatch() == &DispatchFor(expected), "the kernels' default table is %s, expected %s",
        cpu::Dispatch().name, name);
  CHECK(&ActiveLinalgKernels() == &DispatchFor(expected).linalg, "linalg's default is %s, expected %s's",
        ActiveLinalgKernels().name, name);
  CHECK(std::strcmp(GemmIsa(), LinalgNameOf(expected)) == 0, "GemmIsa() is %s under %s", GemmIsa(), name);
  // A scope switches linalg only while it lives.
  {
    ScopedLinalgIsa scope(Isa::kScalar);
    CHECK(scope.ok() && std::strcmp(GemmIsa(), "generic") == 0, "ScopedLinalgIsa(scalar) runs %s", GemmIsa());
  }
  CHECK(&ActiveLinalgKernels() == &DispatchFor(expected).linalg, "linalg's default not restored after a scope");
}

// Runs this binary with W4A8_ISA=<isa> and --expect <isa>; true when the child passed.
bool RunForced(Isa isa) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    setenv("W4A8_ISA", cpu::IsaName(isa), 1);
    execl("/proc/self/exe", "test_cpu_dispatch", "--expect", cpu::IsaName(isa), (char*)nullptr);
    std::perror("execl /proc/self/exe");
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--expect") == 0) {
    Isa expected;
    if (!cpu::ParseIsa(argv[2], &expected)) {
      std::printf("FAIL: unknown ISA %s\n", argv[2]);
      return 1;
    }
    CHECK(!cpu::IsaOverrideIgnored(), "W4A8_ISA=%s was ignored", argv[2]);
    CheckDefault(expected);
    std::printf("W4A8_ISA=%s: kernels' table %s, linalg %s\n", argv[2], cpu::Dispatch().name, GemmIsa());
    return Finish();
  }

  for (Isa isa : kAllIsas) CheckComplete(isa);
  CheckAmxFallbacks();
  CHECK(&DispatchFor((Isa)7) == &DispatchFor(Isa::kScalar), "an out-of-range ISA must get the scalar table");
  std::printf("default ISA: %s (table %s, linalg %s)\n", cpu::IsaName(cpu::DefaultIsa()), cpu::Dispatch().name,
              GemmIsa());
  if (!cpu::IsaOverrideIgnored()) {
    const char* env = std::getenv("W4A8_ISA");
    if (!env || !*env) CheckDefault(cpu::AvailableIsas().back());
  }
  CheckDefault(cpu::DefaultIsa());

  for (Isa isa : kAllIsas) {
    if (!cpu::IsaAvailable(isa)) {
      std::printf("SKIP: forcing W4A8_ISA=%s (%s)\n", cpu::IsaName(isa), cpu::IsaUnavailableReason(isa));
      continue;
    }
    CHECK(RunForced(isa), "the child run with W4A8_ISA=%s failed", cpu::IsaName(isa));
  }
  return Finish();
}
