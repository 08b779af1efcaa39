// `w4a8 bench quant`: how long RTN, AWQ and GPTQ take on the seven linear layers of one LLaMA-7B
// decoder layer (hidden 4096, MLP 11008), int4 g128 asymmetric, through the same TypeScript wrappers
// users call (lib/native/quant.ts, lib/native/calib_stats.ts). Weights and calibration activations
// are synthetic and generated natively from fixed seeds: weights normal(0, 0.02); activations
// (A kron B) z + a few outlier channels, z normal, so channels are correlated (a non-diagonal
// Hessian for GPTQ) and a handful are ~20x larger (what AWQ is for).
import * as os from 'node:os';
import { createCalibStats, type CalibStats } from '../native/calib_stats';
import { fillRandom, kroneckerAdd, numThreads } from '../native/kernels';
import { awqSearch, gptqQuantize, quantizeWeight, type WeightQuantConfig } from '../native/quant';
import { CancelToken, neverCancelled } from '../util/cancel';
import { Progress, silentProgress } from '../util/progress';
import { cpuModel } from './cpu';

export type BenchActFormat = 'int8' | 'none';

export interface QuantBenchOptions {
  /** Calibration tokens (rows of every activation). */
  tokens: number;
  /** Rows AWQ searches on (a seeded reservoir sample of the tokens). */
  awqRows: number;
  /** Activation formats AWQ is timed with ('int8': candidates scored by the CPU W4A8 kernels; 'none': float). */
  aformats: BenchActFormat[];
  hidden: number;
  intermediate: number;
  progress?: Progress;
  cancel?: CancelToken;
}

export const LLAMA7B = { hidden: 4096, intermediate: 11008 };
export const BENCH_WEIGHT_CONFIG: WeightQuantConfig = { format: 'int4', symmetric: false, groupSize: 128 };

export interface QuantBenchRow {
  /** 'calib-stats' | 'rtn' | 'awq' | 'gptq'. */
  step: string;
  /** 'int8' / 'none' for AWQ rows. */
  aformat?: BenchActFormat;
  /** The layers (or the activation, for calib-stats) this row covers. */
  target: string;
  k: number;
  n: number;
  wallSeconds: number;
  cpuSeconds: number;
}

export interface QuantBenchReport {
  cpu: string;
  threads: number;
  tokens: number;
  awqRows: number;
  hidden: number;
  intermediate: number;
  loadAvg: [number, number];
  rows: QuantBenchRow[];
  /** Sum per step (and aformat) over its rows. */
  totals: QuantBenchRow[];
}

interface Layer {
  name: string;
  k: number;
  n: number;
  w: Float32Array;
}

interface Activation {
  name: string;
  k: number;
  layers: Layer[];
}

/** K = aCols * bCols with the factors as close as possible (sqrt). */
function factor(k: number): [number, number] {
  let a = Math.floor(Math.sqrt(k));
  while (k % a !== 0) a--;
  return [a, k / a];
}

/** x [tokens][k] = (A kron B) z + outliers(z); all element work is native (fillRandom, kroneckerAdd). */
export async function syntheticActivations(tokens: number, k: number, seed: number): Promise<Float32Array> {
  const [aSide, bSide] = factor(k);
  const z = new Float32Array(tokens * k);
  fillRandom(z, seed, 0, 1, true);
  const a = new Float32Array(2 * aSide * aSide);
  const b = new Float32Array(2 * bSide * bSide);
  // Term 1: a dense mixing, scaled so every channel has variance ~1.
  fillRandom(a.subarray(0, aSide * aSide), seed + 1, 0, 1 / Math.sqrt(aSide), true);
  fillRandom(b.subarray(0, bSide * bSide), seed + 2, 0, 1 / Math.sqrt(bSide), true);
  // Term 2: E kron D, E one-hot at (p, p), D diagonal with 20 at four q: channels p*bSide+q get +20 z.
  const p = Math.min(1, aSide - 1);
  a[aSide * aSide + p * aSide + p] = 1;
  for (const frac of [0.05, 0.3, 0.55, 0.8]) {
    const q = Math.floor(frac * bSide);
    b[bSide * bSide + q * bSide + q] = 20;
  }
  const x = new Float32Array(tokens * k);
  await kroneckerAdd({ terms: 2, aRows: aSide, aCols: aSide, bRows: bSide, bCols: bSide, a, b }, z, tokens, x);
  return x;
}

function weight(name: string, k: number, n: number, seed: number): Layer {
  const w = new Float32Array(k * n);
  fillRandom(w, seed, 0, 0.02, true);
  return { name, k, n, w };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; wallSeconds: number; cpuSeconds: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const value = await fn();
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { value, wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

export function checkQuantBenchOptions(o: QuantBenchOptions): void {
  const int = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`Expected ${name} to be an integer in ${min}..${max} but received ${v}`);
  };
  int('tokens', o.tokens, 16, 1 << 20);
  int('awqRows', o.awqRows, 16, o.tokens);
  int('hidden', o.hidden, 128, 65536);
  int('intermediate', o.intermediate, 128, 65536);
  if (o.hidden % 128 !== 0 || o.intermediate % 128 !== 0) throw new RangeError(`hidden (${o.hidden}) and intermediate (${o.intermediate}) must be multiples of the group size 128`);
  if (!Array.isArray(o.aformats) || o.aformats.length === 0 || o.aformats.some((a) => a !== 'int8' && a !== 'none')) {
    throw new RangeError(`Expected aformats to list 'int8' and/or 'none' but received ${JSON.stringify(o.aformats)}`);
  }
}

/** Runs every step once, in order: statistics, RTN, AWQ per activation format, GPTQ. */
export async function runQuantBench(o: QuantBenchOptions): Promise<QuantBenchReport> {
  checkQuantBenchOptions(o);
  const progress = o.progress ?? silentProgress;
  const cancel = o.cancel ?? neverCancelled;
  const loadBefore = os.loadavg()[0];
  const h = o.hidden, f = o.intermediate;

  progress.log(`generating weights and ${o.tokens} tokens of activations for hidden ${h}, MLP ${f} (not timed)`);
  const acts: Activation[] = [
    { name: 'attn input', k: h, layers: [weight('q_proj', h, h, 11), weight('k_proj', h, h, 12), weight('v_proj', h, h, 13)] },
    { name: 'o input', k: h, layers: [weight('o_proj', h, h, 14)] },
    { name: 'mlp input', k: h, layers: [weight('gate_proj', h, f, 15), weight('up_proj', h, f, 16)] },
    { name: 'down input', k: f, layers: [weight('down_proj', f, h, 17)] },
  ];
  const rows: QuantBenchRow[] = [];
  const layerCount = acts.reduce((s, a) => s + a.layers.length, 0);
  const steps = acts.length + layerCount + acts.length * o.aformats.length + layerCount;
  let done = 0;
  const tick = (detail: string) => {
    done++;
    progress.update(done, detail);
    cancel.throwIfCancelled();
  };

  // Statistics, one activation at a time (the 11008-wide float64 Hessian alone is ~1 GB).
  const stats = new Map<string, CalibStats>();
  progress.start('bench quant', steps);
  for (const [i, a] of acts.entries()) {
    const x = await syntheticActivations(o.tokens, a.k, 100 + i);
    const r = await timed(async () => {
      const acc = createCalibStats({ k: a.k, sampleRows: o.awqRows, seed: i, hessian: true });
      await acc.add(x, o.tokens);
      return acc.finalize();
    });
    stats.set(a.name, r.value);
    rows.push({ step: 'calib-stats', target: a.name, k: a.k, n: 0, wallSeconds: r.wallSeconds, cpuSeconds: r.cpuSeconds });
    tick(`statistics of ${a.name}`);
  }

  for (const a of acts) {
    for (const l of a.layers) {
      const r = await timed(() => quantizeWeight(l.w, l.k, l.n, BENCH_WEIGHT_CONFIG, { name: l.name }));
      rows.push({ step: 'rtn', target: l.name, k: l.k, n: l.n, wallSeconds: r.wallSeconds, cpuSeconds: r.cpuSeconds });
      tick(`rtn ${l.name}`);
    }
  }

  for (const aformat of o.aformats) {
    for (const a of acts) {
      const s = stats.get(a.name)!;
      const r = await timed(() => awqSearch({
        x: s.sample, rows: s.sampleRows, k: a.k, meanAbs: s.meanAbs, config: BENCH_WEIGHT_CONFIG, act: aformat,
        // As `w4a8 quantize --aformat int8` does for MatMulNBits: candidates scored by the W4A8 kernels.
        ...(aformat === 'int8' ? { kernelActQuant: 'per-token-per-group' as const } : {}),
        layers: a.layers.map((l) => ({ w: l.w, n: l.n, name: l.name })),
      }));
      rows.push({ step: 'awq', aformat, target: a.layers.map((l) => l.name).join('+'), k: a.k, n: a.layers.reduce((t, l) => t + l.n, 0),
        wallSeconds: r.wallSeconds, cpuSeconds: r.cpuSeconds });
      tick(`awq (${aformat}) ${a.name}`);
    }
  }

  for (const a of acts) {
    const s = stats.get(a.name)!;
    for (const l of a.layers) {
      const r = await timed(() => gptqQuantize(l.w, l.k, l.n, s.hessian!, { ...BENCH_WEIGHT_CONFIG, name: l.name }));
      rows.push({ step: 'gptq', target: l.name, k: l.k, n: l.n, wallSeconds: r.wallSeconds, cpuSeconds: r.cpuSeconds });
      tick(`gptq ${l.name}`);
    }
    stats.delete(a.name);
  }
  progress.stop();

  const totals: QuantBenchRow[] = [];
  for (const row of rows) {
    let t = totals.find((x) => x.step === row.step && x.aformat === row.aformat);
    if (!t) {
      t = { step: row.step, ...(row.aformat ? { aformat: row.aformat } : {}), target: 'all', k: 0, n: 0, wallSeconds: 0, cpuSeconds: 0 };
      totals.push(t);
    }
    t.wallSeconds += row.wallSeconds;
    t.cpuSeconds += row.cpuSeconds;
  }
  return {
    cpu: cpuModel(), threads: numThreads(), tokens: o.tokens, awqRows: o.awqRows, hidden: h, intermediate: f,
    loadAvg: [loadBefore, os.loadavg()[0]], rows, totals,
  };
}
