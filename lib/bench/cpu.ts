// `w4a8 bench cpu`: our CPU W4A8 kernels against ONNX Runtime's MatMulNBits and fp32 MatMul, in one
// process, in interleaved rounds, on the SAME quantized weights.
//
// Method (docs/BENCHMARKS.md repeats it next to the numbers):
// - Each variant owns a rotation set of distinct weight matrices totalling >= setBytes (1 GiB by
//   default); every call uses the next matrix, so at M=1 the weights stream from DRAM, not cache.
//   ONNX Runtime gets one single-node session per matrix (sessions are cheap; fetch-selected nodes
//   of one big model do not help: ONNX Runtime 1.30 runs every node whatever the fetches, measured).
//   Their intra-op spinning is off (ort_matmul.ts says why).
// - ours and ort-nbits-bs128-acc4 read the same int4 g128 asymmetric matrices; ort-fp32 multiplies
//   by the exact dequantization of the first of them (fp32 is 8x larger, so its set has fewer
//   matrices); ort-nbits-bs32-acc4 and w4a8-fp4 have their own random matrices of their format.
// - One sample = the mean time of a batch of calls lasting about batchMs; rounds visit the variants
//   in a rotating order; medians over rounds are reported.
// - Like for like: both sides go through the same kind of call, an awaited Promise (ONNX Runtime's
//   `await session.run()` is its only API; our `gemmW4A8`, which runs on the libuv pool), and both
//   write into output buffers allocated once per M (ORT: a preallocated Tensor in `fetches`). The
//   empty-call cost of each side (a 128 x 16 matrix, M=1) is measured and reported. Before timing,
//   every matrix a variant will touch is run once at this M (ORT plans memory per input shape).
//   Short calls of ours run on the calling thread inside that Promise (gemmRunsInline), as ORT's do.
//   Three variants keep other methods for comparison: w4a8-sync (synchronous call), w4a8-pool (every
//   call hops to the libuv pool, the default before short calls ran inline) and
//   ort-nbits-bs128-acc4-alloc (ORT allocates the output).
// - The fused terms of W4A8MatMul on the same int4 g128 matrices, each matrix with its own factors
//   at a 5 % parameter budget (so they stream with the weights at M=1): w4a8+lorc5% (fp32 factors,
//   rank 0.05 K N / (K + N)), w4a8+lorc5%-int8 (the same rank, int8 factors with row scales), and
//   w4a8+kron5% (a Kronecker sum with PEFT's balanced factor shapes, B^T as the op holds it; up to
//   M=128: it costs several times the GEMM). Their relErr adds the term's own reference twin to y64.
//   The low-rank variants take w4a8's call path (gemmW4A8LowRank runs short calls inline too, on the
//   GEMM's size); w4a8+kron5% still hops to the libuv pool on every call.
// - relErr = ||y - y64|| / ||y64|| over the first min(M, 4) tokens, y64 = x times the exactly
//   dequantized weight in float64 (native), for matrix 0 of the variant's set.
import * as fs from 'node:fs';
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import {
  cpuDefaultIsa, cpuIsas, fillRandom, gemmDequantizedF64, gemmW4A8, gemmW4A8Kron, gemmW4A8LowRank, gemmW4A8Reference, gemmW4A8Sync,
  numThreads, prepackWeight, dequantizeKN, relativeErrorL2, setNumThreads, type CpuIsa, type CpuPackedWeight, type KronFactors, type LowRankFactors,
} from '../native/kernels';
import { quantizeInt8Rows } from '../native/quant';
import { transposeMatrix } from '../native/tensor_layout';
import { type Progress, silentProgress } from '../util/progress';
import { type CancelToken, neverCancelled, yieldToEventLoop } from '../util/cancel';
import { summarize, elapsedMs } from './stats';
import { canonicalBytes, randomCanonicalWeight, type WeightSpec } from './quantized_set';
import { createMatMulNBitsSession, createMatMulSession, inputTensor, outputTensor, runMatMul, runMatMulInto } from './ort_matmul';

export const BASELINE_VARIANT = 'ort-nbits-bs128-acc4';

export interface CpuBenchOptions {
  /** Weight shapes K x N. */
  shapes: { k: number; n: number }[];
  /** Token counts. */
  ms: number[];
  rounds: number;
  threads: number;
  /** Bytes of distinct weights each variant rotates through (>= 1 GiB to measure DRAM at M=1). */
  setBytes: number;
  /** Target duration of one timed batch. */
  batchMs: number;
  /** The scalar ISA path runs only up to this M (it is ~100x slower). */
  scalarMaxM: number;
  /** ORT intra-op threads spin between runs (default false: ort_matmul.ts says why). */
  ortSpinning?: boolean;
  progress?: Progress;
  cancel?: CancelToken;
}

/** Median cost of one call that does almost no work (a 128 x 16 matrix, M=1), microseconds. */
export interface EmptyCallCost {
  /** `await gemmW4A8(...)`: short calls like this one run on the calling thread (gemmRunsInline). */
  oursAsync: number;
  /** `await gemmW4A8(..., {inline: false})`: a hop to the libuv pool and back. */
  oursPool: number;
  /** `gemmW4A8Sync(...)` on the main thread. */
  oursSync: number;
  /** `await session.run(feeds, fetches)` with a preallocated output. */
  ort: number;
  /** `await session.run(feeds)`: ORT allocates the output. */
  ortAlloc: number;
}

export interface CpuBenchResult {
  variant: string;
  m: number;
  n: number;
  k: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
  relErr: number;
  /** Weight bytes one call reads (canonical layout for 4-bit, fp32 for MatMul). */
  weightBytes: number;
  /** Matrices in the variant's rotation set. */
  matrices: number;
}

export interface CpuBenchReport {
  cpu: string;
  isa: string;
  threads: number;
  setBytes: number;
  ortSpinning: boolean;
  emptyCallUs: EmptyCallCost;
  /** 1-minute load average before and after (the machine may be shared; high values mean noisy numbers). */
  loadAvg: [number, number];
  results: CpuBenchResult[];
}

/** The CPU model line of /proc/cpuinfo (or os.cpus()). */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}

interface Variant {
  name: string;
  weightBytes: number;
  matrices: number;
  maxM: number;
  /** Which float64 reference (weight set) its output is compared with. */
  refKey: string;
  bind(m: number, x: Float32Array): void;
  call(i: number): Promise<unknown> | unknown;
  output0(): Promise<Float32Array>;
  /** The fused term on the first rows of x (reference twin minus the W4A8 reference), added to y64. */
  delta0?(rows: number): Promise<Float32Array>;
}

interface ShapeState {
  variants: Variant[];
  refs: Map<string, CpuPackedWeight>;
  handles: CpuPackedWeight[];
  sessions: ort.InferenceSession[];
}

const INT4_G128: WeightSpec = { format: 'int4', groupSize: 128, asymmetric: true };
const INT4_G32: WeightSpec = { format: 'int4', groupSize: 32, asymmetric: true };
const FP4_G128: WeightSpec = { format: 'fp4', groupSize: 128, asymmetric: false };

function oursVariant(name: string, handles: CpuPackedWeight[], isa: CpuIsa | undefined, weightBytes: number, refKey: string, maxM: number,
  call: 'async' | 'sync' | 'pool' = 'async'): Variant {
  let x: Float32Array = new Float32Array(0), m = 0, out: Float32Array = new Float32Array(0);
  const n = handles[0].n;
  return {
    name, weightBytes, matrices: handles.length, maxM, refKey,
    bind(mm, xx) {
      m = mm;
      x = xx;
      out = new Float32Array(m * n);
    },
    call(i) {
      if (call === 'sync') return gemmW4A8Sync(handles[i % handles.length], x, m, { out, isa });
      return gemmW4A8(handles[i % handles.length], x, m, { out, isa, inline: call === 'pool' ? false : undefined });
    },
    output0: () => gemmW4A8(handles[0], x, m, { isa }),
  };
}

/** The fused-term budget of the bench variants: 5 % of K * N extra parameters. */
export const FUSED_BUDGET = 0.05;

/** PEFT's factorization(d, -1): the divisor pair (m <= n) of d closest to sqrt(d). */
function balancedFactors(d: number): [number, number] {
  let m = 1, n = d;
  while (m < n) {
    let next = m + 1;
    while (d % next !== 0) next++;
    if (next + d / next > m + n) break;
    m = next;
    n = d / next;
  }
  return [Math.min(m, n), Math.max(m, n)];
}

type Fused = { kind: 'lowrank'; factors: LowRankFactors[] } | { kind: 'kron'; factors: KronFactors[] };

/** GemmW4A8 plus a fused term, each matrix of the rotation with its own factors. */
function fusedVariant(name: string, handles: CpuPackedWeight[], fused: Fused, weightBytes: number, maxM: number): Variant {
  let x: Float32Array = new Float32Array(0), m = 0, out: Float32Array = new Float32Array(0);
  const n = handles[0].n, k = handles[0].k;
  const run = (i: number, xx: Float32Array, mm: number, o: { out?: Float32Array; reference?: boolean }) => {
    const h = handles[i % handles.length];
    return fused.kind === 'lowrank'
      ? gemmW4A8LowRank(h, fused.factors[i % handles.length], xx, mm, o)
      : gemmW4A8Kron(h, fused.factors[i % handles.length], xx, mm, { bTransposed: true, ...o });
  };
  return {
    name, weightBytes, matrices: handles.length, maxM, refKey: 'int4-g128',
    bind(mm, xx) {
      m = mm;
      x = xx;
      out = new Float32Array(m * n);
    },
    call: (i) => run(i, x, m, { out }),
    output0: () => run(0, x, m, {}),
    async delta0(rows) {
      const xr = x.subarray(0, rows * k);
      const withTerm = await run(0, xr, rows, { reference: true });
      const base = await gemmW4A8Reference(handles[0], xr, rows);
      return withTerm.map((v, i) => v - base[i]);
    },
  };
}

/** Random factors of the fused terms at FUSED_BUDGET for a k x n matrix (seeded). */
async function fusedFactors(k: number, n: number, seed: number): Promise<{ fp32: LowRankFactors; int8: LowRankFactors; kron: KronFactors }> {
  const rank = Math.max(1, Math.floor((FUSED_BUDGET * k * n) / (k + n)));
  const scale = 0.02;
  const u = new Float32Array(k * rank), v = new Float32Array(rank * n);
  fillRandom(u, seed, -scale, scale);
  fillRandom(v, seed + 1, -scale, scale);
  const ut = await quantizeInt8Rows(await transposeMatrix(u, k, rank), rank, k);
  const v8 = await quantizeInt8Rows(v, rank, n);
  const [k1, k2] = balancedFactors(k), [n1, n2] = balancedFactors(n);
  const terms = Math.max(1, Math.floor((FUSED_BUDGET * k * n) / (k1 * n1 + k2 * n2)));
  const a = new Float32Array(terms * n1 * k1), b = new Float32Array(terms * k2 * n2);
  fillRandom(a, seed + 2, -scale, scale);
  fillRandom(b, seed + 3, -scale, scale);
  return {
    fp32: { rank, u, v },
    int8: { rank, ut: ut.q, us: ut.scales, v: v8.q, vs: v8.scales },
    kron: { terms, aRows: n1, aCols: k1, bRows: n2, bCols: k2, a, b },
  };
}

function ortVariant(name: string, sessions: ort.InferenceSession[], k: number, n: number, weightBytes: number, refKey: string,
  preallocated = true): Variant {
  let tensor: ort.Tensor | undefined, y: ort.Tensor | undefined;
  return {
    name, weightBytes, matrices: sessions.length, maxM: Infinity, refKey,
    bind(m, x) {
      tensor = inputTensor(x, m, k);
      y = outputTensor(m, n);
    },
    call(i) {
      const s = sessions[i % sessions.length];
      return preallocated ? runMatMulInto(s, tensor as ort.Tensor, y as ort.Tensor) : s.run({ A: tensor as ort.Tensor });
    },
    output0: () => runMatMul(sessions[0], tensor as ort.Tensor),
  };
}

/** The fixed cost of each kind of call, on a matrix too small to matter (medians of interleaved rounds). */
async function measureEmptyCalls(threads: number, spinning: boolean, rounds: number): Promise<EmptyCallCost> {
  const k = 128, n = 16;
  const w = randomCanonicalWeight(INT4_G128, n, k, 4242);
  const h = await prepackWeight({ ...w });
  const s = await createMatMulNBitsSession(w, 4, { intraOpNumThreads: threads, spinning });
  try {
    const x = new Float32Array(k);
    fillRandom(x, 4243, 0, 1, true);
    const out = new Float32Array(n);
    const xt = inputTensor(x, 1, k), yt = outputTensor(1, n);
    const calls: [keyof EmptyCallCost, () => unknown][] = [
      ['oursAsync', () => gemmW4A8(h, x, 1, { out })],
      ['oursPool', () => gemmW4A8(h, x, 1, { out, inline: false })],
      ['oursSync', () => gemmW4A8Sync(h, x, 1, { out })],
      ['ort', () => runMatMulInto(s, xt, yt)],
      ['ortAlloc', () => s.run({ A: xt })],
    ];
    const perCall = 200;
    const samples = new Map<keyof EmptyCallCost, number[]>(calls.map(([name]) => [name, []]));
    for (let r = -1; r < rounds; ++r) {  // round -1 warms up
      for (let j = 0; j < calls.length; ++j) {
        const [name, f] = calls[(j + Math.max(r, 0)) % calls.length];
        const t0 = process.hrtime.bigint();
        for (let c = 0; c < perCall; ++c) {
          const p = f();
          if (p instanceof Promise) await p;
        }
        if (r >= 0) (samples.get(name) as number[]).push((elapsedMs(t0) * 1000) / perCall);
      }
      await yieldToEventLoop();
    }
    const median = (name: keyof EmptyCallCost) => summarize(samples.get(name) as number[], rounds * perCall).medianMs;
    return { oursAsync: median('oursAsync'), oursPool: median('oursPool'), oursSync: median('oursSync'), ort: median('ort'), ortAlloc: median('ortAlloc') };
  } finally {
    h.dispose();
    await s.release();
  }
}

/** Builds every variant's rotation set for one shape (the slow part: ~1 GiB of weights per variant). */
async function buildShape(k: number, n: number, o: CpuBenchOptions, progress: Progress, cancel: CancelToken): Promise<ShapeState> {
  const threads = { intraOpNumThreads: o.threads, spinning: o.ortSpinning ?? false };
  const state: ShapeState = { variants: [], refs: new Map(), handles: [], sessions: [] };
  const count = (bytes: number) => Math.max(1, Math.ceil(o.setBytes / bytes));
  const b128 = canonicalBytes(INT4_G128, n, k), b32 = canonicalBytes(INT4_G32, n, k), bfp4 = canonicalBytes(FP4_G128, n, k);
  const bf32 = 4 * n * k;
  const c128 = count(b128), c32 = count(b32), cfp4 = count(bfp4), cf32 = count(bf32);
  const total = c128 + c32 + cfp4;
  progress.start(`building weights ${k}x${n}`, total);
  let done = 0;
  let seed = 1000 * k + n;

  const ours128: CpuPackedWeight[] = [], ort128: ort.InferenceSession[] = [], ortF32: ort.InferenceSession[] = [];
  const lorc: LowRankFactors[] = [], lorc8: LowRankFactors[] = [], kron: KronFactors[] = [];
  for (let i = 0; i < c128; ++i) {
    cancel.throwIfCancelled();
    const w = randomCanonicalWeight(INT4_G128, n, k, (seed += 7));
    const h = await prepackWeight({ ...w, keepCanonical: i < cf32 });
    ours128.push(h);
    const f = await fusedFactors(k, n, seed);
    lorc.push(f.fp32);
    lorc8.push(f.int8);
    kron.push(f.kron);
    ort128.push(await createMatMulNBitsSession(w, 4, threads));
    if (i < cf32) ortF32.push(await createMatMulSession(await dequantizeKN(h), k, n, threads));
    if (i === 0) state.refs.set('int4-g128', h);
    progress.update(++done);
    await yieldToEventLoop();
  }
  const ort32: ort.InferenceSession[] = [];
  for (let i = 0; i < c32; ++i) {
    cancel.throwIfCancelled();
    const w = randomCanonicalWeight(INT4_G32, n, k, (seed += 7));
    ort32.push(await createMatMulNBitsSession(w, 4, threads));
    if (i === 0) {
      const ref = await prepackWeight({ ...w });
      state.refs.set('int4-g32', ref);
      state.handles.push(ref);
    }
    progress.update(++done);
    await yieldToEventLoop();
  }
  const oursFp4: CpuPackedWeight[] = [];
  for (let i = 0; i < cfp4; ++i) {
    cancel.throwIfCancelled();
    const w = randomCanonicalWeight(FP4_G128, n, k, (seed += 7));
    const h = await prepackWeight({ ...w, keepCanonical: i === 0 });
    oursFp4.push(h);
    if (i === 0) state.refs.set('fp4-g128', h);
    progress.update(++done);
    await yieldToEventLoop();
  }
  progress.stop();
  state.handles.push(...ours128, ...oursFp4);
  state.sessions.push(...ort128, ...ort32, ...ortF32);

  state.variants.push(oursVariant('w4a8', ours128, undefined, b128, 'int4-g128', Infinity));
  state.variants.push(oursVariant('w4a8-sync', ours128, undefined, b128, 'int4-g128', Infinity, 'sync'));
  state.variants.push(oursVariant('w4a8-pool', ours128, undefined, b128, 'int4-g128', Infinity, 'pool'));
  state.variants.push(oursVariant('w4a8-fp4', oursFp4, undefined, bfp4, 'fp4-g128', Infinity));
  const pct = `${FUSED_BUDGET * 100}%`;
  const lrBytes = 4 * lorc[0].rank * (k + n), kronBytes = 4 * (kron[0].a.length + kron[0].b.length);
  state.variants.push(fusedVariant(`w4a8+lorc${pct}`, ours128, { kind: 'lowrank', factors: lorc }, b128 + lrBytes, Infinity));
  state.variants.push(fusedVariant(`w4a8+lorc${pct}-int8`, ours128, { kind: 'lowrank', factors: lorc8 }, b128 + lrBytes / 4 + 8 * lorc[0].rank, Infinity));
  state.variants.push(fusedVariant(`w4a8+kron${pct}`, ours128, { kind: 'kron', factors: kron }, b128 + kronBytes, 128));
  for (const isa of cpuIsas()) {
    state.variants.push(oursVariant(`w4a8-${isa}`, ours128, isa, b128, 'int4-g128', isa === 'scalar' ? o.scalarMaxM : Infinity));
  }
  state.variants.push(ortVariant(BASELINE_VARIANT, ort128, k, n, b128, 'int4-g128'));
  state.variants.push(ortVariant(`${BASELINE_VARIANT}-alloc`, ort128, k, n, b128, 'int4-g128', false));
  state.variants.push(ortVariant('ort-nbits-bs32-acc4', ort32, k, n, b32, 'int4-g32'));
  state.variants.push(ortVariant('ort-fp32', ortF32, k, n, bf32, 'int4-g128'));
  return state;
}

async function releaseShape(state: ShapeState): Promise<void> {
  for (const h of state.handles) h.dispose();
  for (const s of state.sessions) await s.release();
}

/** Runs the whole benchmark; results are in shape, M, variant order. */
export async function runCpuBench(o: CpuBenchOptions): Promise<CpuBenchReport> {
  const progress = o.progress ?? silentProgress;
  const cancel = o.cancel ?? neverCancelled;
  const previousThreads = numThreads();
  const loadBefore = os.loadavg()[0];
  setNumThreads(o.threads);
  const results: CpuBenchResult[] = [];
  const ortSpinning = o.ortSpinning ?? false;
  let emptyCallUs: EmptyCallCost;
  try {
    progress.start('empty-call cost', 1);
    emptyCallUs = await measureEmptyCalls(o.threads, ortSpinning, Math.max(3, o.rounds));
    progress.update(1);
    progress.stop();
    for (const { k, n } of o.shapes) {
      const state = await buildShape(k, n, o, progress, cancel);
      try {
        for (const m of o.ms) results.push(...(await timeShape(state, k, n, m, o, progress, cancel)));
      } finally {
        await releaseShape(state);
      }
    }
  } finally {
    setNumThreads(previousThreads);
  }
  return { cpu: cpuModel(), isa: cpuDefaultIsa(), threads: o.threads, setBytes: o.setBytes, ortSpinning, emptyCallUs, loadAvg: [loadBefore, os.loadavg()[0]], results };
}

async function timeShape(state: ShapeState, k: number, n: number, m: number, o: CpuBenchOptions, progress: Progress,
  cancel: CancelToken): Promise<CpuBenchResult[]> {
  const x = new Float32Array(m * k);
  fillRandom(x, 17 * m + k + n, 0, 1, true);
  const active = state.variants.filter((v) => m <= v.maxM);
  const next = new Map<Variant, number>(active.map((v) => [v, 0]));
  const callNext = async (v: Variant) => {
    const i = next.get(v) as number;
    next.set(v, i + 1);
    const r = v.call(i);
    if (r instanceof Promise) await r;
  };

  // Size each variant's batch, then run once, at this M, every matrix the timed calls will touch
  // (first calls fault pages in; ORT plans its memory per input shape), and restart the rotation.
  const reps = new Map<Variant, number>();
  for (const v of active) {
    v.bind(m, x);
    await callNext(v);
    const t0 = process.hrtime.bigint();
    await callNext(v);
    const once = Math.max(elapsedMs(t0), 1e-3);
    const count = Math.min(1000, Math.max(1, Math.ceil(o.batchMs / once)));
    reps.set(v, count);
    for (let i = 2; i < Math.min(v.matrices, count * o.rounds); ++i) {
      cancel.throwIfCancelled();
      await callNext(v);
    }
    next.set(v, 0);
  }

  const samples = new Map<Variant, number[]>(active.map((v) => [v, []]));
  progress.start(`timing ${k}x${n} M=${m}`, o.rounds);
  for (let r = 0; r < o.rounds; ++r) {
    cancel.throwIfCancelled();
    for (let j = 0; j < active.length; ++j) {
      const v = active[(j + r) % active.length];
      const count = reps.get(v) as number;
      const t0 = process.hrtime.bigint();
      for (let c = 0; c < count; ++c) await callNext(v);
      (samples.get(v) as number[]).push(elapsedMs(t0) / count);
    }
    progress.update(r + 1);
    await yieldToEventLoop();
  }
  progress.stop();

  // Errors against float64 products of each reference weight on the first rows of x.
  const rows = Math.min(m, 4);
  const truth = new Map<string, Float64Array>();
  for (const [key, h] of state.refs) truth.set(key, await gemmDequantizedF64(h, x.subarray(0, rows * k), rows));
  const out: CpuBenchResult[] = [];
  for (const v of active) {
    const y = await v.output0();
    const t = summarize(samples.get(v) as number[], o.rounds * (reps.get(v) as number));
    let ref = truth.get(v.refKey) as Float64Array;
    if (v.delta0) {
      const d = await v.delta0(rows);
      ref = ref.map((r, i) => r + d[i]);
    }
    out.push({
      variant: v.name, m, n, k, ...t, relErr: relativeErrorL2(y, ref, rows * n),
      weightBytes: v.weightBytes, matrices: v.matrices,
    });
  }
  return out;
}
