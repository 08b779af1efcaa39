// Native failures, mapped by the status the core returned (native/include/w4a8/status.h): the addon
// sets `code` ('W4A8_NUMERICAL_ERROR', ...) and `status` (its number) on every error built from a
// Status, so the mapping keys on the code and never on the message text, which may be reworded.
// Errors without a code (TypeError / RangeError thrown by the glue's own argument checks) pass
// through unchanged: the wrappers validate first, so those mean a wrapper missed a check.
import { CancelledError, W4A8Error } from '../util/errors';

/** status.h's Status values by their stable code (StatusCode()). */
export const NATIVE_STATUS = {
  W4A8_INVALID_ARGUMENT: 1,
  W4A8_UNSUPPORTED: 2,
  W4A8_OUT_OF_MEMORY: 3,
  W4A8_CUDA_ERROR: 4,
  W4A8_NUMERICAL_ERROR: 5,
  W4A8_CANCELLED: 6,
} as const;
export type NativeStatusCode = keyof typeof NATIVE_STATUS;

/** What a mapped error keeps of the native one, for callers that branch on it. */
export interface NativeStatus {
  code: NativeStatusCode;
  status: number;
}

/** The status a native error carries, or undefined for any other value. */
export function nativeStatusOf(err: unknown): NativeStatus | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const { code, status } = err as { code?: unknown; status?: unknown };
  if (typeof code !== 'string' || !Object.prototype.hasOwnProperty.call(NATIVE_STATUS, code)) return undefined;
  return { code: code as NativeStatusCode, status: typeof status === 'number' ? status : NATIVE_STATUS[code as NativeStatusCode] };
}

/** Caller-specific wording: what a status means for this call (e.g. which input held NaN). */
export interface StatusExplanations {
  numerical?: string;
}

function message(what: string, s: NativeStatus, explain: StatusExplanations): string {
  switch (s.code) {
    case 'W4A8_NUMERICAL_ERROR':
      return explain.numerical ?? `${what}: the input holds NaN or Inf values; fix the values before the call`;
    case 'W4A8_OUT_OF_MEMORY':
      return `${what}: out of memory; free memory, or use smaller inputs (fewer tokens, fewer threads, one layer at a time)`;
    case 'W4A8_UNSUPPORTED':
      return `${what}: not supported by this build of the addon or on this machine; rebuild with \`npm run build\` or use another path`;
    case 'W4A8_CUDA_ERROR':
      return `${what}: the CUDA runtime failed; check the driver and device (nvidia-smi), or use the CPU kernels`;
    case 'W4A8_CANCELLED':
      return `${what}: cancelled`;
    case 'W4A8_INVALID_ARGUMENT':
      return `${what}: the native side refused an argument its wrapper accepted; this is a bug in w4a8's validation, please report it`;
  }
}

/**
 * The project's error for a native failure: CancelledError for W4A8_CANCELLED, RangeError for
 * W4A8_INVALID_ARGUMENT (a validation gap, not the user's fault), W4A8Error for the rest; each keeps
 * `code` and `status`. `site` is an Error made before an asynchronous call: its stack replaces the
 * libuv one, which ends in the addon and names no caller.
 */
export function mapNativeError(err: unknown, what: string, explain: StatusExplanations = {}, site?: Error): unknown {
  const s = nativeStatusOf(err);
  let mapped: Error;
  if (!s) {
    if (!(err instanceof Error) || !site) return err;
    mapped = err;
  } else {
    const text = message(what, s, explain);
    mapped = s.code === 'W4A8_CANCELLED' ? new CancelledError(text)
      : s.code === 'W4A8_INVALID_ARGUMENT' ? new RangeError(text)
        : new W4A8Error(text);
    Object.assign(mapped, { code: s.code, status: s.status });
  }
  if (site) mapped.stack = `${mapped.name}: ${mapped.message}\n${(site.stack ?? '').split('\n').slice(1).join('\n')}`;
  return mapped;
}

/** Awaits a native Promise, mapping its rejection (mapNativeError) with the caller's stack. */
export async function callNative<T>(what: string, run: () => Promise<T>, explain?: StatusExplanations): Promise<T> {
  const site = new Error(what);
  try {
    return await run();
  } catch (err) {
    throw mapNativeError(err, what, explain, site);
  }
}

/** Runs a synchronous native call, mapping what it throws (the stack already names the caller). */
export function callNativeSync<T>(what: string, run: () => T, explain?: StatusExplanations): T {
  try {
    return run();
  } catch (err) {
    throw mapNativeError(err, what, explain);
  }
}
