// Typed arrays dropped by a long pipeline (a 7B block's fp32 weights, statistics and quantized
// copies: hundreds of MB each) are freed only when V8 collects, which it does on its own schedule,
// so several blocks' garbage can stack up in the peak. Between blocks the pipeline asks for a
// full collection (V8's gc function, obtained without a command-line flag).
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

let gc: (() => void) | undefined | null = null;

export function collectGarbage(): void {
  if (gc === null) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as () => void;
    } catch {
      gc = undefined;
    }
  }
  gc?.();
}
