// Per-layer calibration statistics, accumulated natively (native/include/w4a8/calib_stats.h):
// mean/max |x| per input channel, the Hessian X^T X, the row count and a seeded reservoir sample
// of at most `sampleRows` rows. Memory stays bounded however long the calibration runs.
import { W4A8Error } from '../util/errors';
import { native, type NativeCalibStats } from './binding';
import { callNative } from './status';
import { describe, expectInt, expectObject, expectTypedArray } from './validate';

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

/** Accumulates statistics batch by batch; add() calls are applied in call order. */
export class CalibStatsAccumulator {
  readonly k: number;
  readonly hessianMode: 'float64' | 'float32' | 'none';
  private handle: NativeCalibStats | undefined;
  private pending: Promise<void> = Promise.resolve();

  constructor(options: CalibStatsOptions) {
    expectObject('calibration statistics options', options, '{ k, sampleRows, seed, hessian }');
    this.k = expectInt('k', options.k, 1, 1 << 20);
    const sampleRows = expectInt('sampleRows', options.sampleRows ?? 4096, 0, 1 << 24);
    const seed = expectInt('seed', options.seed ?? 0, 0);
    const h = options.hessian ?? true;
    if (h === true || h === 'float64') this.hessianMode = 'float64';
    else if (h === 'float32') this.hessianMode = 'float32';
    else if (h === false) this.hessianMode = 'none';
    else throw new TypeError(`Expected hessian to be true, false, 'float64' or 'float32' but received ${describe(h)}`);
    const mode = ({ none: 0, float32: 1, float64: 2 } as const)[this.hessianMode];
    this.handle = new (native().CalibStats)(this.k, sampleRows, seed, mode);
  }

  private live(what: string): NativeCalibStats {
    if (!this.handle) throw new W4A8Error(`CalibStats.${what}: the statistics were already finalized or disposed; create a new accumulator`);
    return this.handle;
  }

  /**
   * Adds `count` rows (default rows.length / k) of fp32 values, or fp16 bit patterns in a
   * Uint16Array. The array must not change until the returned promise settles. A batch with
   * NaN/Inf is refused (W4A8Error) and leaves the statistics unchanged.
   */
  add(rows: Float32Array | Uint16Array, count?: number): Promise<void> {
    const handle = this.live('add');
    // fp16 activations stay as their bit patterns (Uint16Array): the addon widens them.
    expectTypedArray('rows', rows, ['Float32Array', 'Uint16Array']);
    if (count === undefined && rows.length % this.k !== 0) {
      throw new RangeError(`Expected rows to hold whole rows of k=${this.k} values but received ${rows.length} values, not a multiple of k; pass whole rows or give count`);
    }
    const n = expectInt('count', count ?? rows.length / this.k, 0, Math.floor(rows.length / this.k));
    const run = callNative('CalibStats.add', () => this.pending.then(() => handle.add(rows, n)), {
      numerical: 'calibration activations hold NaN or Inf values; the model overflows on the calibration text (try fp32 or other text)',
    });
    // Later adds wait for this one whatever its outcome; the error goes to this caller only.
    this.pending = run.catch(() => undefined);
    return run;
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
