#!/usr/bin/env bash
# One command for a bare GPU machine (nvcc, CMake, python3 + torch; no Node, no network):
#   configure + build the native core with CUDA, run ctest (all tests; every CUDA test must PASS, not
#   skip), run bench_cuda and the cuBLAS/FP8 baselines, and merge them into results.json + results.md
#   under $OUT (or ./gpu-results). Prints the table last. Exit status: 0 all CUDA tests passed,
#   1 a CUDA test failed, skipped or was not built, 2 the machine lacks a tool.
# Budget: under 6 minutes (CPU tests capped at 60 s, bench at 80 s, baselines at 60 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${OUT:-$ROOT/gpu-results}
mkdir -p "$OUT_DIR"
BUILD=${W4A8_GPU_BUILD:-$ROOT/build/gpu-check}  # overridable for a dry run elsewhere
JOBS=${JOBS:-16}
START=$(date +%s)
step() { echo "== [$(($(date +%s) - START)) s] $*"; }
die() { echo "gpu-check: $*" >&2; exit "${2:-1}"; }

# --- header --------------------------------------------------------------------------------
GPU_NAME=unknown
DRIVER=unknown
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
  DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
fi
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
[ -n "$NVCC" ] || die "nvcc not found (install the CUDA toolkit or put nvcc on PATH)" 2
command -v cmake >/dev/null 2>&1 || die "cmake not found" 2
echo "gpu-check: GPU '$GPU_NAME', driver $DRIVER, $("$NVCC" --version | tail -1), $(cmake --version | head -1)"
echo "gpu-check: results in $OUT_DIR"

# --- build -----------------------------------------------------------------------------------
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${GENERATOR[1]:-Unix Makefiles}" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"  # a cache from another generator cannot be reused
fi
step "configure ($BUILD)"
if ! cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" "${GENERATOR[@]}" \
    >"$OUT_DIR/configure.log" 2>&1; then
  tail -30 "$OUT_DIR/configure.log"
  die "cmake configure failed (log: $OUT_DIR/configure.log)"
fi
grep -q "w4a8: CUDA kernels ON" "$OUT_DIR/configure.log" || die "CMake did not enable CUDA (see $OUT_DIR/configure.log)"
step "build (-j$JOBS)"
# Keep going past a failing target (another module's file mid-edit must not cost the CUDA results);
# what did not build shows up below as tests that did not run.
BUILD_FAILED=0
KEEP_GOING=(-k)
[ "${#GENERATOR[@]}" -gt 0 ] && KEEP_GOING=(-k 0)
if ! cmake --build "$BUILD" -j"$JOBS" -- "${KEEP_GOING[@]}" >"$OUT_DIR/build.log" 2>&1; then
  BUILD_FAILED=1
  grep -E "error|Error" "$OUT_DIR/build.log" | head -40
  echo "gpu-check: the build had errors (log: $OUT_DIR/build.log); running what was built"
fi

# --- tests -----------------------------------------------------------------------------------
step "ctest: CUDA tests"
set +e
(cd "$BUILD" && ctest -V -R '^cuda_test_' --timeout 240) >"$OUT_DIR/ctest-cuda.log" 2>&1
CTEST_CUDA_RC=$?
set -e
grep -E "Test +#|tests passed|tests failed" "$OUT_DIR/ctest-cuda.log" || true
CUDA_BAD=$(grep -E "Test +#.*cuda_test_[a-z0-9_]+ .*(Failed|Skipped|Not Run|Timeout|Exception)" "$OUT_DIR/ctest-cuda.log" || true)
CUDA_RAN=$(grep -cE "Test +#.*cuda_test_[a-z0-9_]+ .*Passed" "$OUT_DIR/ctest-cuda.log" || true)
# The CPU tests run after, capped, so that slow ones cannot hide the CUDA verdict or the benchmarks.
step "ctest: the other tests (capped at 60 s)"
set +e
(cd "$BUILD" && timeout 60 ctest -E '^cuda_test_' --output-on-failure -j 8) >"$OUT_DIR/ctest-other.log" 2>&1
CTEST_OTHER_RC=$?
set -e
grep -E "tests passed|tests failed" "$OUT_DIR/ctest-other.log" || true
[ "$CTEST_OTHER_RC" -eq 124 ] && echo "gpu-check: the CPU tests did not finish within 60 s (log: $OUT_DIR/ctest-other.log)"
OTHER_BAD=$(grep -E "Test +#.*(Failed|Timeout|Exception|Not Run)" "$OUT_DIR/ctest-other.log" || true)

# --- benchmarks ------------------------------------------------------------------------------
step "bench_cuda (budget 80 s)"
BENCH_RC=0
timeout 110 "$BUILD/native/bench_cuda" --max-seconds 80 >"$OUT_DIR/bench_cuda.jsonl" 2>"$OUT_DIR/bench_cuda.log" || BENCH_RC=$?
[ "$BENCH_RC" -eq 0 ] || echo "gpu-check: bench_cuda exited $BENCH_RC (log: $OUT_DIR/bench_cuda.log)"
step "torch baselines (budget 60 s)"
BASE_RC=0
timeout 90 python3 scripts/gpu_baselines.py bench --max-seconds 60 >"$OUT_DIR/baselines.jsonl" 2>"$OUT_DIR/baselines.log" || BASE_RC=$?
[ "$BASE_RC" -eq 0 ] || { echo "gpu-check: gpu_baselines.py exited $BASE_RC:"; tail -5 "$OUT_DIR/baselines.log"; }

# --- report ----------------------------------------------------------------------------------
step "merge"
echo
echo "ctest: CUDA tests exit $CTEST_CUDA_RC ($CUDA_RAN passed), other tests exit $CTEST_OTHER_RC"
[ -n "$OTHER_BAD" ] && { echo "non-CUDA tests that failed:"; echo "$OTHER_BAD"; }
[ -n "$CUDA_BAD" ] && { echo "CUDA tests that did not pass:"; echo "$CUDA_BAD"; }
echo "CUDA test summaries (full log: $OUT_DIR/ctest-cuda.log):"
grep -E "^[0-9]+: (PASS|FAIL|SKIP|ok  |device|seed)" "$OUT_DIR/ctest-cuda.log" | head -60 || true
VERDICT="gpu-check: all CUDA tests passed"
STATUS=0
if [ -n "$CUDA_BAD" ] || [ "${CUDA_RAN:-0}" -eq 0 ] || [ ! -x "$BUILD/native/cuda_test_w4a8_gemm" ]; then
  VERDICT="gpu-check: FAIL (a CUDA test failed, was skipped or did not run; see $OUT_DIR/ctest-cuda.log)"
  STATUS=1
fi
[ "$BUILD_FAILED" -eq 1 ] && VERDICT="$VERDICT (the build had errors: $OUT_DIR/build.log)"
echo "$VERDICT"
step "results (table last)"
python3 scripts/gpu_baselines.py merge --ours "$OUT_DIR/bench_cuda.jsonl" --baselines "$OUT_DIR/baselines.jsonl" \
  --out "$OUT_DIR" --device "$GPU_NAME" --driver "$DRIVER" || echo "gpu-check: no timings to report"
exit "$STATUS"
