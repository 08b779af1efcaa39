// Ctrl-C handling: the first SIGINT asks long work to stop at its next safe point (between
// ORT runs, between layers); outputs are never committed after that. A second SIGINT exits.
import { CancelledError } from './errors';

export class CancelToken {
  private cancelled = false;
  get isCancelled(): boolean {
    return this.cancelled;
  }
  cancel(): void {
    this.cancelled = true;
  }
  throwIfCancelled(): void {
    if (this.cancelled) throw new CancelledError('interrupted (Ctrl-C): stopped cleanly, nothing written');
  }
}

export const neverCancelled = new CancelToken();

/** A token cancelled by SIGINT while `fn` runs. */
export async function withSigint<T>(fn: (token: CancelToken) => Promise<T>): Promise<T> {
  const token = new CancelToken();
  let count = 0;
  const onSigint = () => {
    count++;
    if (count > 1) process.exit(130);
    process.stderr.write('\nstopping at the next safe point (Ctrl-C again to abort)...\n');
    token.cancel();
  };
  process.on('SIGINT', onSigint);
  try {
    return await fn(token);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Yield to the event loop so that SIGINT and progress output get a chance to run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
