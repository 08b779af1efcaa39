// The pipeline's view of the native quantizers (lib/native/quant.ts, lib/native/calib_stats.ts):
// every call the pipeline makes goes through here, so the rest of lib/quant reads in the
// field's terms (a layer, a config) rather than in buffer arguments.
import * as nq from '../native/quant';
import type { ActFormat, QuantConfig } from './config';

export interface WeightQuant {
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array;
  dequantized: Float32Array;
  groupSize: number;
}

export function weightOptions(c: QuantConfig, grouping: 'oc' | 'ic', clipRatio = 1): nq.WeightQuantOptions {
  return { format: c.wformat, symmetric: c.symmetric, groupSize: c.groupSize, grouping, pow2Scales: c.pow2Scales, clipRatio };
}

export function rtn(w: Float32Array, k: number, n: number, c: QuantConfig, grouping: 'oc' | 'ic', name?: string): Promise<WeightQuant> {
  return nq.quantizeWeight(w, k, n, weightOptions(c, grouping), { name });
}

/** Relative output error ||XW - Qa(X)W'||^2 / ||XW||^2 on the calibration sample (Qa(X/s) and W' of diag(s) W with AWQ's inputScale). */
export function outputError(sample: Float32Array, rows: number, k: number, w: Float32Array, deq: Float32Array, n: number, act: ActFormat,
  inputScale?: Float32Array): Promise<number> {
  return nq.layerOutputError(sample, rows, k, w, deq, n, act, inputScale);
}

export { nq };
