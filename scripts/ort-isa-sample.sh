#!/usr/bin/env bash
# Which vector instructions ONNX Runtime's own code runs, by sampling: a decode loop on <model.onnx> in
# the addon's session of <libonnxruntime.so.1> (scripts/decode-loop.js --engine w4a8, prefill of --ctx
# 512), then $SAMPLES times (default 40) every thread's current instruction through gdb; the
# instructions that lie in that library's code are counted by register width and by the int8 dot-product
# instructions (vpdpbusd: AVX512-VNNI / AVX-VNNI; vpmaddubsw and vpmaddwd: AVX2's two steps). It shows
# whether a library from scripts/ort-avx2-library.js runs AVX2 kernels only. Needs gdb and ptrace rights
# over the child.
#   [SAMPLES=40] bash scripts/ort-isa-sample.sh <libonnxruntime.so.1> <model.onnx with MatMulNBits>
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1" ] || [ ! -f "$2" ]; then
  echo "usage: bash scripts/ort-isa-sample.sh <libonnxruntime.so.1> <model.onnx>" >&2
  exit 2
fi
command -v gdb >/dev/null || { echo "ort-isa-sample: needs gdb" >&2; exit 1; }
cd "$(dirname "$0")/.."
lib=$(readlink -f "$1")
pcs=$(mktemp)
log=$(mktemp)
W4A8_ORT_LIBRARY="$lib" node scripts/decode-loop.js --time "$2" --engine w4a8 --ctx 512 --steps 16 --rounds 1000 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$pcs" "$log"' EXIT
sleep 12  # past session creation, into the loop
kill -0 $pid 2>/dev/null || { echo "ort-isa-sample: the decode loop ended early:" >&2; cat "$log" >&2; exit 1; }
range=$(grep -F "$lib" /proc/$pid/maps | grep ' r-xp ' | head -1 | cut -d' ' -f1 || true)
[ -n "$range" ] || { echo "ort-isa-sample: $lib is not mapped in the loop's process" >&2; exit 1; }
for _ in $(seq 1 "${SAMPLES:-40}"); do
  gdb -p $pid -batch -ex 'thread apply all x/i $pc' 2>/dev/null | grep '=>' >>"$pcs" || true
  sleep 0.3
done
python3 - "$range" "$pcs" "$lib" <<'PY'
import re, sys
lo, hi = (int(x, 16) for x in sys.argv[1].split('-'))
n = zmm = ymm = vnni = maddubs = maddwd = 0
for line in open(sys.argv[2]):
    m = re.search(r'=> 0x([0-9a-f]+)', line)
    if not m or not lo <= int(m.group(1), 16) < hi:
        continue
    n += 1
    zmm += 'zmm' in line
    ymm += 'ymm' in line and 'zmm' not in line
    vnni += 'vpdpbusd' in line
    maddubs += 'vpmaddubsw' in line
    maddwd += 'vpmaddwd' in line
print(f"{sys.argv[3]}: {n} samples in its code; zmm {zmm}, ymm {ymm}; vpdpbusd {vnni}, vpmaddubsw {maddubs}, vpmaddwd {maddwd}")
PY
