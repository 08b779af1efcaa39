// Calibration capture: run the calibration windows through ONNX Runtime on a copy of the model
// whose graph also outputs the input of each target MatMul, and fold every fetched activation
// into native statistics (mean|x|, max|x|, Hessian X^T X, a bounded row sample). Memory stays
// bounded: targets are split into passes whose statistics fit `budgetBytes`; each pass runs the
// whole calibration text again.
import * as fs from 'node:fs';
import { DataType } from '../onnx/dtype';
import { externalFiles } from '../onnx/external_data';
import { ortModelSource, type OnnxModel } from '../onnx/model';
import { createCalibStats, type CalibStats } from '../native/calib_stats';
import { CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { W4A8Error } from '../util/errors';
import { withCaptureOutputs } from './capture_graph';
import { openDecoder } from '../ort/session';
import { memTrace } from '../native/mem_trace';

export interface CaptureTarget {
  /** Name of the activation tensor (a MatMul input). */
  input: string;
  k: number;
  dataType: DataType;
}

export interface CaptureOptions {
  /** Accumulate X^T X (GPTQ needs it; costs K*K*8 bytes per target). */
  hessian: boolean;
  /** Rows kept per target for layer-error searches (AWQ, auto grouping); default 4096. */
  sampleRows?: number;
  /** Bytes of statistics held at once (default 1 GiB); more targets -> more passes. */
  budgetBytes?: number;
  seed?: number;
  progress?: Progress;
  cancel?: CancelToken;
  /** Opens the capture copy of the model (default: a decoder session fed the window's tokens); sequential calibration feeds a block the previous block's outputs. */
  open?: (captureModel: OnnxModel) => Promise<WindowRunner>;
  /** Progress phase name (default "calibration"). */
  phase?: string;
}

/** Runs the capture copy on calibration window `w`, returning the fetched outputs. */
export interface WindowRunner {
  run(w: number, fetches: string[]): Promise<Record<string, { dims: readonly number[]; size: number; data: unknown }>>;
  release(): Promise<void>;
}

export const DEFAULT_SAMPLE_ROWS = 4096;
export const DEFAULT_CAPTURE_BUDGET = 1 << 30;

/**
 * Hessians larger than this are accumulated and kept in fp32 (K = 11008: 0.48 GB instead of
 * 0.97 GB; GPTQ widens them as it reads them, its factorization stays fp64). Each window's
 * X^T X is an fp32 GEMM either way; only the sum over windows loses the fp64 accumulator.
 */
export const HESSIAN_F32_ABOVE_BYTES = 256 * 2 ** 20;

export function hessianPrecision(k: number): 'float64' | 'float32' {
  return k * k * 8 > HESSIAN_F32_ABOVE_BYTES ? 'float32' : 'float64';
}

function statsBytes(t: CaptureTarget, hessian: boolean, sampleRows: number, maxWindow: number): number {
  // Hessian (fp64, or fp32 when large), sample rows and one fetched window in float32.
  return (hessian ? t.k * t.k * (hessianPrecision(t.k) === 'float32' ? 4 : 8) : 0) + sampleRows * t.k * 4 + maxWindow * t.k * 4;
}

/** Splits targets into passes whose statistics fit the budget (a single target over budget gets a pass of its own). */
export function planPasses(targets: CaptureTarget[], hessian: boolean, sampleRows: number, maxWindow: number, budgetBytes: number): CaptureTarget[][] {
  const passes: CaptureTarget[][] = [];
  let current: CaptureTarget[] = [];
  let used = 0;
  for (const t of targets) {
    const bytes = statsBytes(t, hessian, sampleRows, maxWindow);
    if (current.length > 0 && used + bytes > budgetBytes) {
      passes.push(current);
      current = [];
      used = 0;
    }
    current.push(t);
    used += bytes;
  }
  if (current.length > 0) passes.push(current);
  return passes;
}

/** Side files above this total make calibration sessions skip prepacking. */
export const NO_PREPACK_ABOVE_BYTES = 2 ** 30;

/**
 * ORT prepacks every constant MatMul weight into an anonymous copy when it creates a session, so
 * a large model would sit in memory twice (mapped file pages plus packed copies). A calibration
 * session runs a few windows and is thrown away: for models with large side files it keeps the
 * weights as mapped file pages instead (measured on a 4.3 GB fp32 side file, one 512-token run:
 * peak RSS 4.1 GB -> 2.8 GB, mostly reclaimable file pages; session creation 18 s -> 0.4 s; the run
 * about 30 % slower).
 */
export function calibrationSessionConfig(model: OnnxModel): Record<string, string> | undefined {
  let total = 0;
  for (const file of externalFiles(model.proto, model.dir)) total += fs.statSync(file).size;
  return total > NO_PREPACK_ABOVE_BYTES ? { disable_prepacking: '1' } : undefined;
}

/** Fetched activations: fp32, or fp16 bits (the accumulator widens them natively). */
function asRows(data: unknown): Float32Array | Uint16Array {
  if (data instanceof Float32Array || data instanceof Uint16Array) return data;
  throw new W4A8Error('a captured activation is neither float32 nor float16; cannot calibrate this model');
}

/** The whole model's calibration copy in a decoder session. ORT reads the original side files itself (mapped), so no side file passes through a Node buffer. */
async function openDecoderRunner(model: OnnxModel, captureModel: OnnxModel, windows: number[][]): Promise<WindowRunner> {
  const { bytes, externalDataFolder } = ortModelSource(captureModel);
  const decoder = await openDecoder(bytes, { externalDataFolder, label: 'the calibration copy of the model', sessionConfig: calibrationSessionConfig(model) });
  return { run: (w, fetches) => decoder.run(windows[w], fetches), release: () => decoder.release() };
}

export async function captureStatistics(
  model: OnnxModel,
  targets: CaptureTarget[],
  windows: number[][],
  opts: CaptureOptions,
): Promise<Map<string, CalibStats>> {
  const sampleRows = opts.sampleRows ?? DEFAULT_SAMPLE_ROWS;
  const budget = opts.budgetBytes ?? DEFAULT_CAPTURE_BUDGET;
  const progress = opts.progress ?? silentProgress;
  const cancel = opts.cancel ?? neverCancelled;
  if (windows.length === 0) throw new W4A8Error('calibration has no windows');
  const maxWindow = Math.max(...windows.map((w) => w.length));
  const passes = planPasses(targets, opts.hessian, sampleRows, maxWindow, budget);
  const typeOf = new Map(targets.map((t) => [t.input, t.dataType]));
  const result = new Map<string, CalibStats>();
  for (let p = 0; p < passes.length; p++) {
    const pass = passes[p];
    const names = pass.map((t) => t.input);
    const captureModel = withCaptureOutputs(model, names, (n) => typeOf.get(n) ?? DataType.FLOAT);
    memTrace(`capture ${names.join(',')}: opening`);
    const runner = opts.open ? await opts.open(captureModel) : await openDecoderRunner(model, captureModel, windows);
    memTrace('capture: session open');
    let released = false;
    const handles = pass.map((t) => createCalibStats({ k: t.k, sampleRows, hessian: opts.hessian ? hessianPrecision(t.k) : false, seed: opts.seed ?? 0 }));
    memTrace('capture: statistics created');
    try {
      const phase = opts.phase ?? 'calibration';
      progress.start(passes.length > 1 ? `${phase} pass ${p + 1}/${passes.length}` : phase, windows.length);
      for (let w = 0; w < windows.length; w++) {
        cancel.throwIfCancelled();
        const out = await runner.run(w, names);
        for (let i = 0; i < pass.length; i++) {
          const t = out[pass[i].input];
          const rows = t.size / pass[i].k;
          if (!Number.isInteger(rows)) {
            throw new W4A8Error(`captured activation "${pass[i].input}" has shape [${t.dims.join(', ')}], not a multiple of K=${pass[i].k}`);
          }
          try {
            await handles[i].add(asRows(t.data), rows);
          } catch (err) {
            // Targets come in graph order, so the first refused one is where NaN/Inf first appeared (in this pass).
            if ((err as { code?: unknown }).code !== 'W4A8_NUMERICAL_ERROR') throw err;
            throw new W4A8Error(
              `calibration window ${w + 1} of ${windows.length} gives NaN or Inf activations at the input of ${pass[i].input}` +
                ` (first non-finite layer input of this pass); the model overflows on the calibration text (try fp32 weights or other text)`,
            );
          }
        }
        memTrace(`capture: window ${w + 1} added`);
        progress.update(w + 1, `${windows[w].length} tokens`);
        await yieldToEventLoop();
      }
      progress.stop();
      // The session (its weights) goes before finalize copies the statistics out: they never coexist.
      released = true;
      await runner.release();
      memTrace('capture: session released');
      for (let i = 0; i < pass.length; i++) {
        result.set(pass[i].input, await handles[i].finalize());
        handles[i].dispose();
      }
      memTrace('capture: statistics finalized');
    } finally {
      for (const h of handles) h.dispose();
      if (!released) await runner.release();
    }
  }
  return result;
}
