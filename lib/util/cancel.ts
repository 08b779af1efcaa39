// Signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP ask long work to stop at its next safe point
// (between ORT runs, between layers, between tensors of the write phase); outputs are never
// committed after that, and what was staged is removed. A second signal aborts at once, after
// removing staged files synchronously (the registered abort cleanups). Exit codes are 128 plus
// the signal number: 130, 143, 129.
import { CancelledError } from './errors';

export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';
export const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
export const SIGNAL_EXIT_CODES: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

export class CancelToken {
  private cancelled = false;
  private signal?: StopSignal;
  get isCancelled(): boolean {
    return this.cancelled;
  }
  /** The signal that cancelled it, if one did. */
  get stopSignal(): StopSignal | undefined {
    return this.signal;
  }
  cancel(signal?: StopSignal): void {
    this.cancelled = true;
    this.signal ??= signal;
  }
  throwIfCancelled(): void {
    if (!this.cancelled) return;
    const sig = this.signal ?? 'SIGINT';
    const what = sig === 'SIGINT' ? 'interrupted (Ctrl-C)' : `stopped by ${sig}`;
    throw new CancelledError(`${what}: stopped cleanly, nothing written`, SIGNAL_EXIT_CODES[sig]);
  }
}

export const neverCancelled = new CancelToken();

const abortCleanups = new Set<() => void>();

/**
 * Registers work to undo (remove staged files, release locks) if the process must exit at
 * once; returns the function that unregisters it. Cleanups run synchronously, newest first.
 */
export function registerAbortCleanup(fn: () => void): () => void {
  abortCleanups.add(fn);
  return () => abortCleanups.delete(fn);
}

/** Runs every registered cleanup (each once; a failing one does not stop the others). */
export function runAbortCleanups(): void {
  for (const fn of [...abortCleanups].reverse()) {
    abortCleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the next run removes stale staging folders and locks of dead processes
    }
  }
}

/** A token cancelled by SIGINT, SIGTERM or SIGHUP while `fn` runs. */
export async function withSignals<T>(fn: (token: CancelToken) => Promise<T>): Promise<T> {
  const token = new CancelToken();
  let count = 0;
  const handlers = STOP_SIGNALS.map((sig) => {
    const onSignal = () => {
      count++;
      if (count > 1) {
        runAbortCleanups();
        process.exit(SIGNAL_EXIT_CODES[sig]);
      }
      const how = sig === 'SIGINT' ? 'Ctrl-C' : sig;
      process.stderr.write(`\n${how}: stopping at the next safe point (send it again to abort now)...\n`);
      token.cancel(sig);
    };
    process.on(sig, onSignal);
    return [sig, onSignal] as const;
  });
  try {
    return await fn(token);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

/** The former name: every stop signal, not only SIGINT. */
export const withSigint = withSignals;

/** Yield to the event loop so that signals and progress output get a chance to run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
