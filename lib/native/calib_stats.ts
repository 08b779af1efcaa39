// Per-layer calibration statistics, accumulated natively (native/include/w4a8/calib_stats.h):
// mean/max |x| per input channel, the Hessian X^T X, the row count and a seeded reservoir sample
// of at most `sampleRows` rows. Memory stays bounded however long the calibration runs.
import { W4A8Error } from '../util/errors';
import { native, type NativeBinding } from './binding';

export interface CalibStatsOptions {
  /** Input channels (columns of each activation row). */
  k: number;
  /** Reservoir capacity in rows (default 4096; 0 = no sample). */
  sampleRows?: number;
  /** Seed of the reservoir (default 0): same seed and rows give the same sample, however batched. */
  seed?: number;
  /** Accumulate H = X^T X: true / 'float64' (default), 'float32' (half the memory), false. */
  hessian?: boolean | 'float64' | 'float32';
}

/** The finalized statistics of one layer input. */
export interface CalibStats {
  k: number;
  /** Rows seen. */
  rows: number;
  /** Per-channel mean |x| and max |x| [K]. */
  meanAbs: Float32Array;
  maxAbs: Float32Array;
  /** sum over rows of x^T x, full symmetric [K][K] (absent when not accumulated). */
  hessian?: Float64Array | Float32Array;
  /** Reservoir sample [sampleRows][K] (rows in slot order). */
  sample: Float32Array;
  sampleRows: number;
}

interface NativeCalibStats {
  add(rows: Float32Array | Uint16Array, count: number): Promise<void>;
  rows(): number;
  sampleCount(): number;
  bytes(): number;
  readMeanAbs(out: Float32Array): void;
  readMaxAbs(out: Float32Array): void;
  readSample(out: Float32Array): void;
  readHessian(out: Float64Array | Float32Array): Promise<void>;
  dispose(): void;
}

type CalibStatsCtor = new (k: number, sampleRows: number, seed: number, hessianMode: number) => NativeCalibStats;

function ctor(): CalibStatsCtor {
  const b = native() as NativeBinding & { CalibStats?: CalibStatsCtor };
  if (typeof b.CalibStats !== 'function') {
    throw new W4A8Error('the w4a8 native addon was built without calibration statistics; rebuild it with `npm run build`');
  }
  return b.CalibStats;
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`Expected an integer for ${name} but received ${String(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`Expected ${name} in [${min}, ${max}] but received ${value}`);
  return value;
}

/** Accumulates statistics batch by batch; add() calls are applied in call order. */
export class CalibStatsAccumulator {
  readonly k: number;
  readonly hessianMode: 'float64' | 'float32' | 'none';
  private handle: NativeCalibStats | undefined;
  private pending: Promise<void> = Promise.resolve();

  constructor(options: CalibStatsOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('Expected calibration statistics options {k, sampleRows, seed, hessian}');
    this.k = checkInt('k', options.k, 1, 1 << 20);
    const sampleRows = checkInt('sampleRows', options.sampleRows ?? 4096, 0, 1 << 24);
    const seed = checkInt('seed', options.seed ?? 0, 0, Number.MAX_SAFE_INTEGER);
    const h = options.hessian ?? true;
    if (h === true || h === 'float64') this.hessianMode = 'float64';
    else if (h === 'float32') this.hessianMode = 'float32';
    else if (h === false) this.hessianMode = 'none';
    else throw new TypeError(`Expected hessian true, false, 'float64' or 'float32' but received ${String(h)}`);
    const mode = { none: 0, float32: 1, float64: 2 }[this.hessianMode];
    const Ctor = ctor();
    this.handle = new Ctor(this.k, sampleRows, seed, mode);
  }

  private live(what: string): NativeCalibStats {
    if (!this.handle) throw new W4A8Error(`CalibStats.${what}: the statistics were already finalized or disposed`);
    return this.handle;
  }

  /**
   * Adds `count` rows (default rows.length / k) of fp32 values, or fp16 bit patterns in a
   * Uint16Array. The array must not change until the returned promise settles. A batch with
   * NaN/Inf is refused (W4A8Error) and leaves the statistics unchanged.
   */
  add(rows: Float32Array | Uint16Array, count?: number): Promise<void> {
    const handle = this.live('add');
    if (!(rows instanceof Float32Array) && !(rows instanceof Uint16Array)) {
      throw new TypeError('Expected rows to be a Float32Array (fp32) or a Uint16Array (fp16 bits)');
    }
    if (count === undefined && rows.length % this.k !== 0) {
      throw new RangeError(`rows hold ${rows.length} values, not a multiple of k = ${this.k}; pass whole rows or give count`);
    }
    const n = count ?? rows.length / this.k;
    checkInt('count', n, 0, Number.MAX_SAFE_INTEGER);
    if (n * this.k > rows.length) {
      throw new RangeError(`rows hold ${rows.length} values, fewer than count * k = ${n} * ${this.k}`);
    }
    const site = new Error('CalibStats.add');
    const run = this.pending.then(() => handle.add(rows, n));
    // Later adds wait for this one whatever its outcome; the error goes to this caller only.
    this.pending = run.catch(() => undefined);
    return run.catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      const e = new W4A8Error(/numerical error/.test(message)
        ? 'calibration activations hold NaN or Inf values; the model overflows on the calibration text (try fp32 or other text)'
        : `CalibStats.add: ${message}`);
      e.stack = `${e.name}: ${e.message}\n${(site.stack ?? '').split('\n').slice(1).join('\n')}`;
      throw e;
    });
  }

  /** Rows accumulated so far (after the adds already settled). */
  get rows(): number {
    return this.live('rows').rows();
  }

  /** Native memory held, in bytes. */
  get bytes(): number {
    return this.handle ? this.handle.bytes() : 0;
  }

  /** Waits for pending adds, reads every statistic, and frees the native accumulator. */
  async finalize(): Promise<CalibStats> {
    const handle = this.live('finalize');
    await this.pending;
    const k = this.k;
    const meanAbs = new Float32Array(k);
    const maxAbs = new Float32Array(k);
    handle.readMeanAbs(meanAbs);
    handle.readMaxAbs(maxAbs);
    const sampleRows = handle.sampleCount();
    const sample = new Float32Array(sampleRows * k);
    handle.readSample(sample);
    let hessian: Float64Array | Float32Array | undefined;
    if (this.hessianMode !== 'none') {
      hessian = this.hessianMode === 'float64' ? new Float64Array(k * k) : new Float32Array(k * k);
      await handle.readHessian(hessian);
    }
    const rows = handle.rows();
    this.dispose();
    return { k, rows, meanAbs, maxAbs, ...(hessian ? { hessian } : {}), sample, sampleRows };
  }

  /** Frees the native memory now (finalize() does it too). */
  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }
}

/** Creates an accumulator: createCalibStats({k, sampleRows: 4096, seed: 0, hessian: true}). */
export function createCalibStats(options: CalibStatsOptions): CalibStatsAccumulator {
  return new CalibStatsAccumulator(options);
}
