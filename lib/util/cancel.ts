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

// One set of handlers per process. The CLI installs them before it parses arguments (or loads
// the commands), so a signal at any point after start-up gets its exit code and the cleanups: while
// a command body runs, the first signal cancels its token (stop at the next safe point); with no body
// running (argument parsing, start-up) there is nothing to stop gracefully, so it runs the cleanups
// and exits at once, as a second signal always does. Once the command has finished (its output
// committed or its failure reported), a signal only ends the process early with the command's own
// exit code: saying "stopped, nothing written" then would be false.
const activeTokens = new Set<CancelToken>();
let signalCount = 0;
let commandFinished = false;
let handlersInstalled = false;
let handlersPermanent = false;

function onStopSignal(sig: StopSignal): void {
  signalCount++;
  if (commandFinished && activeTokens.size === 0) {
    const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    process.stderr.write(`w4a8: warning: ${sig === 'SIGINT' ? 'Ctrl-C' : sig} after the command had finished: exiting with its own status (${code})\n`);
    process.exit(code);
  }
  if (signalCount > 1 || activeTokens.size === 0) {
    runAbortCleanups();
    const what = sig === 'SIGINT' ? 'interrupted (Ctrl-C)' : `stopped by ${sig}`;
    process.stderr.write(`w4a8: error: ${what}${signalCount > 1 ? ' again' : ''}: aborted at once, staged files removed\n`);
    process.exit(SIGNAL_EXIT_CODES[sig]);
  }
  const how = sig === 'SIGINT' ? 'Ctrl-C' : sig;
  process.stderr.write(`\n${how}: stopping at the next safe point (send it again to abort now)...\n`);
  for (const token of activeTokens) token.cancel(sig);
}

const stopHandlers = new Map<StopSignal, () => void>(STOP_SIGNALS.map((sig) => [sig, () => onStopSignal(sig)]));

function attachStopHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const [sig, h] of stopHandlers) process.on(sig, h);
}

function detachStopHandlers(): void {
  if (!handlersInstalled || handlersPermanent) return;
  handlersInstalled = false;
  for (const [sig, h] of stopHandlers) process.off(sig, h);
}

/**
 * Installs the stop-signal handlers for the rest of the process (the CLI calls it first thing).
 * Library callers need not: `withSignals` installs them for the span of its work.
 */
export function installStopSignals(): void {
  attachStopHandlers();
  handlersPermanent = true;
}

/** The CLI's command has finished (written its output or reported its failure): see onStopSignal. */
export function markCommandFinished(): void {
  commandFinished = true;
}

/** A token cancelled by SIGINT, SIGTERM or SIGHUP while `fn` runs. */
export async function withSignals<T>(fn: (token: CancelToken) => Promise<T>): Promise<T> {
  const token = new CancelToken();
  attachStopHandlers();
  activeTokens.add(token);
  try {
    return await fn(token);
  } finally {
    activeTokens.delete(token);
    if (activeTokens.size === 0) detachStopHandlers();
  }
}

/**
 * Test hook for signals at chosen points of a real run: when W4A8_SIGNAL_AT is "<point>:<SIGNAL>"
 * (e.g. "model-loaded:SIGTERM", or "...:SIGTERM*2" for two), the process sends itself that signal
 * when it reaches the point. Points: "start" (before argument parsing), "command" (arguments
 * parsed, before the command body), "staged" (output lock and staging folder made), "model-loaded",
 * "finished" (the command body has returned).
 */
export function signalPoint(point: string): void {
  const spec = process.env.W4A8_SIGNAL_AT;
  if (!spec) return;
  const m = /^([a-z-]+):(SIGINT|SIGTERM|SIGHUP)(?:\*(\d))?$/.exec(spec);
  if (!m || m[1] !== point) return;
  for (let i = 0; i < Number(m[3] ?? 1); i++) process.kill(process.pid, m[2]);
  // Signals arrive on a later turn of the event loop; at "finished" nothing else keeps it alive.
  if (point === 'finished') setTimeout(() => undefined, 2000);
}

/** The former name: every stop signal, not only SIGINT. */
export const withSigint = withSignals;

/** Yield to the event loop so that signals and progress output get a chance to run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
