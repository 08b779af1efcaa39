#!/usr/bin/env bash
# Compares `w4a8 generate` sampling with llama2.c's `run` on stories260K, setting by setting.
# usage: scripts/compare-llama2c-sampling.sh <llama2.c run binary> <stories260K model.onnx from `w4a8 import llama2c`>
# (build llama2.c's run.c with `gcc -O2 -o run run.c -lm`; ../shared/models/stories260K holds the checkpoint.)
# llama2.c's -n counts forward steps from BOS; ours runs longer and must begin with llama2.c's text.
set -euo pipefail
run=${1:?llama2.c run binary}
model=${2:?stories260K model.onnx}
here=$(cd "$(dirname "$0")/.." && pwd)
stories=${STORIES:-$here/../shared/models/stories260K}
status=0
# temperature top-p seed prompt
while read -r t p s prompt; do
  ours=$(node "$here/bin/w4a8.js" generate "$model" ${prompt:+--prompt "$prompt"} --temperature "$t" --top-p "$p" --seed "$s" --max-new-tokens 300 --quiet)
  theirs=$("$run" "$stories/stories260K.bin" -z "$stories/tok512.bin" -t "$t" -p "$p" -s "$s" -n 256 ${prompt:+-i "$prompt"} 2>/dev/null)
  if [[ "$ours" == "$theirs"* ]]; then
    echo "same: -t $t -p $p -s $s -i '$prompt' (${#theirs} characters of llama2.c's text)"
  else
    echo "DIFFERENT: -t $t -p $p -s $s -i '$prompt'"
    status=1
  fi
done <<'SETTINGS'
1.0 0.9 42 Once upon a time
0.8 1.0 7
1.2 0.95 123 The dog
0.5 0.5 99 Lily
1.0 0.0 2026 Tom had
SETTINGS
exit $status
