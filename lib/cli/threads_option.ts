// `--threads N` for the commands that run native work (quantize, sweep, bench, eval, generate): one
// thread count for the kernels, the quantizers and the ONNX Runtime sessions' intra-op threads
// (lib/ort/session.ts intraOpThreads). Without it they use every hardware thread.
import { setNumThreads } from '../native/kernels';
import { UsageError } from '../util/errors';

export const MAX_THREADS = 1024;

export const threadsOption = {
  type: 'number',
  describe: 'Threads for the native kernels, quantizers and ONNX Runtime sessions (default: all hardware threads)',
} as const;

/** Checks --threads (exit 2 when wrong) and applies it; undefined keeps the default. */
export function applyThreads(threads: number | undefined): void {
  if (threads === undefined) return;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new UsageError(`--threads must be an integer in 1..${MAX_THREADS}, got ${threads}`);
  }
  setNumThreads(threads);
}
