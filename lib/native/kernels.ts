// Validated, typed wrappers over the CPU kernels (native/addon/cpu_kernels_bindings.cpp):
// W4A8 GEMM (int8 activations quantized inside the call), W4A16 (fp32 activations), the Kronecker
// adapter y += sum_i (A_i kron B_i) x, the fused W4A8 + Kronecker call, and their references.
//
// Weights are in the canonical MatMulNBits layout (native/include/w4a8/formats.h): codes
// [n][blocks][groupSize/2] low nibble first, scales [n][blocks], optional packed zero points
// [n][ceil(blocks/2)] (absent: 8). Activations x are [m][k] row-major; outputs y are [m][n].
// Every argument is checked here (validate.ts, formats.ts); the addon re-checks lengths only.
import { native, type CpuIsa, type CpuPackedWeight } from './binding';
import { checkCanonicalWeight, GROUP_SIZES, type CanonicalWeight, type WeightFormat } from './formats';
import { callNative, callNativeSync } from './status';
import {
  describe, expectBoolean, expectDisjoint, expectInt, expectNumber, expectObject, expectOneOf, expectOptions, expectTypedArray, isTypedArray,
} from './validate';

export type { CpuIsa, CpuPackedWeight };
export const CPU_ISAS: readonly CpuIsa[] = ['scalar', 'avx2', 'avx512vnni', 'amx'];
export type CpuWeightFormat = WeightFormat;
/** int8 activation scales: one per (token, weight K-group) like ORT accuracy_level 4, or one per token. */
export type ActQuantName = 'token-group' | 'token';
const ACT_QUANTS: readonly ActQuantName[] = ['token-group', 'token'];
/** The block sizes the kernels prepack (formats.ts). */
export { GROUP_SIZES };
/** Dimensions accepted by the addon (n, k, m, and aRows*bRows / aCols*bCols). */
export const MAX_DIM = 2 ** 24;

/** The raw binding, for tests that feed it wrong arguments on purpose. */
export function rawCpuKernels(): ReturnType<typeof native> {
  return native();
}

// ---- argument checks particular to the kernels ------------------------------------------------

function expectIsa(v: unknown, allowReference = false): string | null {
  if (v === undefined || v === null) return null;
  if (allowReference && v === 'reference') return 'reference';
  const isa = expectOneOf('isa', v, allowReference ? [...CPU_ISAS, 'reference'] : CPU_ISAS);
  const reason = native().cpuIsaUnavailableReason(isa);
  if (reason) throw new RangeError(`Expected an isa available on this machine but received '${isa}' (${reason}); leave isa unset for the best one (${cpuDefaultIsa()})`);
  return isa;
}

function expectAct(v: unknown): 0 | 1 {
  if (v === undefined) return 0;
  return expectOneOf('act', v, ACT_QUANTS) === 'token' ? 1 : 0;
}

function expectWeight(v: unknown): CpuPackedWeight {
  // A class instance made by this environment's addon (the class is per thread), not a typed array.
  if (!(v instanceof native().CpuPackedWeight)) throw new TypeError(`Expected weight to be a CpuPackedWeight from prepackWeight() but received ${describe(v)}`);
  if (v.disposed) throw new RangeError('Expected a live weight but the CpuPackedWeight was disposed; prepack it again');
  return v;
}

// ---- ISA and threads -----------------------------------------------------------------------

/** ISAs this CPU and OS can run, in increasing order of preference. */
export function cpuIsas(): CpuIsa[] {
  return native().cpuIsas() as CpuIsa[];
}
/** The ISA kernels use when none is given (best available, or W4A8_ISA). */
export function cpuDefaultIsa(): CpuIsa {
  return native().cpuDefaultIsa() as CpuIsa;
}
/** True when the W4A8_ISA environment variable named an ISA this CPU lacks (the best one is used instead). */
export function cpuIsaOverrideIgnored(): boolean {
  return native().cpuIsaOverrideIgnored();
}
/** '' when `isa` runs here, otherwise why not (for skip messages). */
export function cpuIsaUnavailableReason(isa: CpuIsa): string {
  return native().cpuIsaUnavailableReason(expectOneOf('isa', isa, CPU_ISAS));
}
/** Kernel threads (0 restores the default: all hardware threads). Results do not depend on it. */
export function setNumThreads(threads: number): void {
  native().setNumThreads(expectInt('threads', threads, 0, 1024));
}
export function numThreads(): number {
  return native().getNumThreads();
}

// ---- weights -------------------------------------------------------------------------------

/** A canonical weight (formats.ts) and how to prepack it. */
export interface PrepackOptions extends CanonicalWeight {
  /** Kernels to run by default; the best available when unset. */
  isa?: CpuIsa;
  /** Keep a copy of the canonical arrays (needed by W4A16, the references, dequantizeKN). Default true. */
  keepCanonical?: boolean;
}

type PrepackArgs = Parameters<ReturnType<typeof native>['cpuPrepackWeight']>;

function prepackArgs(options: unknown, sync: boolean): PrepackArgs {
  const o = expectObject('prepack options', options, '{ format, n, k, groupSize, codes, scales }');
  const w = checkCanonicalWeight(o, { maxDim: MAX_DIM });
  const isa = expectIsa(o.isa);
  const keepCanonical = expectBoolean('keepCanonical', o.keepCanonical, true);
  return [w.formatCode, w.n, w.k, w.groupSize, w.codes, w.scales, w.zeroPoints, isa, sync, keepCanonical];
}

/** Prepack a canonical weight for the CPU kernels (on the libuv pool). The arrays are copied. */
export async function prepackWeight(options: PrepackOptions): Promise<CpuPackedWeight> {
  const args = prepackArgs(options, false);
  return callNative('prepackWeight', () => native().cpuPrepackWeight(...args) as Promise<CpuPackedWeight>);
}

/** prepackWeight on the calling thread (small weights). */
export function prepackWeightSync(options: PrepackOptions): CpuPackedWeight {
  const args = prepackArgs(options, true);
  return callNativeSync('prepackWeight', () => native().cpuPrepackWeight(...args) as CpuPackedWeight);
}

// ---- GEMM ----------------------------------------------------------------------------------

export interface GemmOptions {
  /** [n] added to every token's output. */
  bias?: Float32Array;
  /** W4A8 only: activation scale granularity (default 'token-group'). */
  act?: ActQuantName;
  /** [m][n] output to overwrite; a new array when absent. Must not overlap x or bias. */
  out?: Float32Array;
  /** Kernels to run instead of the weight's own. */
  isa?: CpuIsa;
  /**
   * gemmW4A8 only: where the async call runs. Unset: short calls (see INLINE_MAX_MACS) run on the
   * calling thread, longer ones on the libuv pool; true / false force one or the other.
   */
  inline?: boolean;
}

interface CheckedGemm {
  w: CpuPackedWeight;
  x: Float32Array;
  m: number;
  y: Float32Array;
  bias: Float32Array | null;
  act: 0 | 1;
  isa: string | null;
}

function gemmArgs(weight: unknown, x: unknown, m: unknown, options: unknown): CheckedGemm {
  const w = expectWeight(weight);
  const tokens = expectInt('m', m, 1, MAX_DIM);
  const xs = expectTypedArray('x', x, 'Float32Array', tokens * w.k, `m=${tokens} x k=${w.k}`);
  const o = expectOptions('options', options);
  const bias = o.bias === undefined || o.bias === null ? null : expectTypedArray('bias', o.bias, 'Float32Array', w.n, `n=${w.n}`);
  const y = o.out === undefined || o.out === null
    ? new Float32Array(tokens * w.n)
    : expectTypedArray('out', o.out, 'Float32Array', tokens * w.n, `m=${tokens} x n=${w.n}`);
  expectDisjoint('out', y, { x: xs, bias });
  return { w, x: xs, m: tokens, y, bias, act: expectAct(o.act), isa: expectIsa(o.isa) };
}

/**
 * The largest m * n * k (multiply-adds) that an async gemmW4A8 runs on the calling thread by default:
 * about 0.1-0.3 ms of work on 2 cores (an M=1 TinyLlama MLP matrix, 2048 x 5632, is 11.5 M). The hop
 * to the libuv pool and back costs 40-150 us per call on the 2-vCPU EPYC (docs/BENCHMARKS.md, empty-call
 * line), as much as such a call's work, and ONNX Runtime's own `await run()` runs on the calling thread
 * too. Longer calls keep the event loop free.
 */
export const INLINE_MAX_MACS = 2 ** 25;

/** Whether an async W4A8 call of this size runs on the calling thread (scalar kernels never do: ~50x slower). */
export function gemmRunsInline(weight: CpuPackedWeight, m: number, options?: Pick<GemmOptions, 'isa' | 'inline'>): boolean {
  if (options?.inline !== undefined) return expectBoolean('inline', options.inline, false);
  const isa = options?.isa ?? weight.isa;
  return isa !== 'scalar' && m * weight.n * weight.k <= INLINE_MAX_MACS;
}

/** W4A8: y = x W^T (+bias), x quantized to int8 inside the call (short calls inline: gemmRunsInline). */
export async function gemmW4A8(weight: CpuPackedWeight, x: Float32Array, m: number, options?: GemmOptions): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  if (gemmRunsInline(a.w, a.m, options)) {
    callNativeSync('gemmW4A8', () => native().cpuGemmW4A8(a.w, a.x, a.m, a.y, a.bias, a.act, a.isa, true));
    return a.y;
  }
  await callNative('gemmW4A8', () => native().cpuGemmW4A8(a.w, a.x, a.m, a.y, a.bias, a.act, a.isa, false) as Promise<void>);
  return a.y;
}

/** gemmW4A8 on the calling thread: blocks the event loop (tiny calls, benchmarks). */
export function gemmW4A8Sync(weight: CpuPackedWeight, x: Float32Array, m: number, options?: GemmOptions): Float32Array {
  const a = gemmArgs(weight, x, m, options);
  callNativeSync('gemmW4A8', () => native().cpuGemmW4A8(a.w, a.x, a.m, a.y, a.bias, a.act, a.isa, true));
  return a.y;
}

/** The scalar reference that defines W4A8's numerics (single-threaded). */
export async function gemmW4A8Reference(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'isa'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await callNative('gemmW4A8Reference', () => native().cpuGemmW4A8Reference(a.w, a.x, a.m, a.y, a.bias, a.act, false) as Promise<void>);
  return a.y;
}

/** W4A16: fp32 activations, weights dequantized on the fly. */
export async function gemmW4A16(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await callNative('gemmW4A16', () => native().cpuGemmW4A16(a.w, a.x, a.m, a.y, a.bias, a.isa, false) as Promise<void>);
  return a.y;
}

export function gemmW4A16Sync(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act'>): Float32Array {
  const a = gemmArgs(weight, x, m, options);
  callNativeSync('gemmW4A16', () => native().cpuGemmW4A16(a.w, a.x, a.m, a.y, a.bias, a.isa, true));
  return a.y;
}

/** W4A16's scalar reference (float64 accumulation). */
export async function gemmW4A16Reference(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act' | 'isa'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await callNative('gemmW4A16Reference', () => native().cpuGemmW4A16Reference(a.w, a.x, a.m, a.y, a.bias, false) as Promise<void>);
  return a.y;
}

/** x times the exactly dequantized weight, in float64 (the ground truth of kernel error). */
export async function gemmDequantizedF64(weight: CpuPackedWeight, x: Float32Array, m: number): Promise<Float64Array> {
  const w = expectWeight(weight);
  const tokens = expectInt('m', m, 1, MAX_DIM);
  const xs = expectTypedArray('x', x, 'Float32Array', tokens * w.k, `m=${tokens} x k=${w.k}`);
  const y = new Float64Array(tokens * w.n);
  await callNative('gemmDequantizedF64', () => native().cpuGemmDequantizedF64(w, xs, tokens, y, false) as Promise<void>);
  return y;
}

/** The weight dequantized to the ONNX MatMul B layout [k][n] (fp32). */
export async function dequantizeKN(weight: CpuPackedWeight): Promise<Float32Array> {
  const w = expectWeight(weight);
  const out = new Float32Array(w.k * w.n);
  await callNative('dequantizeKN', () => native().cpuDequantizeKN(w, out, false) as Promise<void>);
  return out;
}

// ---- Kronecker adapter ---------------------------------------------------------------------

/**
 * sum_i A_i kron B_i with A_i [aRows][aCols], B_i [bRows][bCols] row-major, stacked over terms;
 * it maps k = aCols*bCols inputs to n = aRows*bRows outputs:
 * (A kron B)[p*bRows + q][r*bCols + s] = A[p][r] * B[q][s].
 */
export interface KronFactors {
  terms: number;
  aRows: number;
  aCols: number;
  bRows: number;
  bCols: number;
  a: Float32Array;
  b: Float32Array;
}

function kronArgs(kron: unknown): KronFactors {
  const o = expectObject('kron', kron, '{ terms, aRows, aCols, bRows, bCols, a, b }');
  const terms = expectInt('kron.terms', o.terms, 1, 1 << 16);
  const aRows = expectInt('kron.aRows', o.aRows, 1, MAX_DIM);
  const aCols = expectInt('kron.aCols', o.aCols, 1, MAX_DIM);
  const bRows = expectInt('kron.bRows', o.bRows, 1, MAX_DIM);
  const bCols = expectInt('kron.bCols', o.bCols, 1, MAX_DIM);
  if (aRows * bRows > MAX_DIM || aCols * bCols > MAX_DIM) {
    throw new RangeError(`Expected aRows*bRows and aCols*bCols at most ${MAX_DIM} but received ${aRows * bRows} and ${aCols * bCols}`);
  }
  const a = expectTypedArray('kron.a', o.a, 'Float32Array', terms * aRows * aCols, `terms=${terms} x aRows=${aRows} x aCols=${aCols}`);
  const b = expectTypedArray('kron.b', o.b, 'Float32Array', terms * bRows * bCols, `terms=${terms} x bRows=${bRows} x bCols=${bCols}`);
  return { terms, aRows, aCols, bRows, bCols, a, b };
}

/** y [m][aRows*bRows] += sum_i (A_i kron B_i) x [m][aCols*bCols], in place; isa 'reference' = float64 twin. */
export async function kroneckerAdd(kron: KronFactors, x: Float32Array, m: number, y: Float32Array, options?: { isa?: CpuIsa | 'reference' }): Promise<void> {
  const kt = kronArgs(kron);
  const tokens = expectInt('m', m, 1, MAX_DIM);
  const k = kt.aCols * kt.bCols, n = kt.aRows * kt.bRows;
  const xs = expectTypedArray('x', x, 'Float32Array', tokens * k, `m=${tokens} x aCols*bCols=${k}`);
  const ys = expectTypedArray('y', y, 'Float32Array', tokens * n, `m=${tokens} x aRows*bRows=${n}`);
  expectDisjoint('y', ys, { x: xs, 'kron.a': kt.a, 'kron.b': kt.b });
  const isa = expectIsa(expectOptions('options', options).isa, true);
  await callNative('kroneckerAdd', () =>
    native().cpuKroneckerAdd(kt.terms, kt.aRows, kt.aCols, kt.bRows, kt.bCols, kt.a, kt.b, xs, tokens, ys, isa, false) as Promise<void>);
}

/**
 * y = W4A8(x) (+bias) + sum_i (A_i kron B_i) x; `reference` runs both scalar twins. With
 * `bTransposed`, kron.b holds each B_i transposed, [terms][bCols][bRows] (W4A8MatMul's kron_b).
 */
export async function gemmW4A8Kron(weight: CpuPackedWeight, kron: KronFactors, x: Float32Array, m: number,
  options?: Omit<GemmOptions, 'isa'> & { reference?: boolean; bTransposed?: boolean }): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  const kt = kronArgs(kron);
  const bTransposed = expectBoolean('bTransposed', (options as { bTransposed?: unknown } | undefined)?.bTransposed, false);
  if (kt.aRows * kt.bRows !== a.w.n || kt.aCols * kt.bCols !== a.w.k) {
    throw new RangeError(`Expected kron to map k=${a.w.k} to n=${a.w.n} but aCols*bCols=${kt.aCols * kt.bCols} and aRows*bRows=${kt.aRows * kt.bRows}`);
  }
  expectDisjoint('out', a.y, { 'kron.a': kt.a, 'kron.b': kt.b });
  const reference = expectBoolean('reference', (options as { reference?: unknown } | undefined)?.reference, false);
  await callNative('gemmW4A8Kron', () => native().cpuGemmW4A8Kron(a.w, a.x, a.m, a.y, a.bias, a.act, kt.terms, kt.aRows, kt.aCols,
    kt.bRows, kt.bCols, kt.a, kt.b, reference, false, bTransposed) as Promise<void>);
  return a.y;
}

/**
 * The low-rank term of W4A8MatMul: fp32 factors u [k][r], v [r][n], or int8 ones (formats.h
 * Int8Rows) ut = U^T [r][k] and v [r][n] with one scale per row (quantizeInt8Rows).
 */
export type LowRankFactors =
  | { rank: number; u: Float32Array; v: Float32Array }
  | { rank: number; ut: Int8Array; us: Float32Array; v: Int8Array; vs: Float32Array };

/**
 * y = W4A8(x) (+bias) + (x U) V; `reference` runs both scalar twins. Short calls run on the calling
 * thread as gemmW4A8's do (gemmRunsInline on the GEMM's size), so the two compare like for like.
 */
export async function gemmW4A8LowRank(weight: CpuPackedWeight, lowRank: LowRankFactors, x: Float32Array, m: number,
  options?: Omit<GemmOptions, 'isa'> & { reference?: boolean }): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  const o = expectObject('lowRank', lowRank, '{ rank, u, v } or { rank, ut, us, v, vs }');
  const r = expectInt('lowRank.rank', o.rank, 1, MAX_DIM);
  const k = a.w.k, n = a.w.n;
  let u: Float32Array | Int8Array, v: Float32Array | Int8Array, us: Float32Array | null = null, vs: Float32Array | null = null;
  if ('ut' in o) {
    u = expectTypedArray('lowRank.ut', o.ut, 'Int8Array', r * k, `rank=${r} x k=${k}`);
    v = expectTypedArray('lowRank.v', o.v, 'Int8Array', r * n, `rank=${r} x n=${n}`);
    us = expectTypedArray('lowRank.us', o.us, 'Float32Array', r, `rank=${r}`);
    vs = expectTypedArray('lowRank.vs', o.vs, 'Float32Array', r, `rank=${r}`);
  } else {
    u = expectTypedArray('lowRank.u', o.u, 'Float32Array', k * r, `k=${k} x rank=${r}`);
    v = expectTypedArray('lowRank.v', o.v, 'Float32Array', r * n, `rank=${r} x n=${n}`);
  }
  expectDisjoint('out', a.y, { 'lowRank.u': u, 'lowRank.v': v, ...(us ? { 'lowRank.us': us } : {}), ...(vs ? { 'lowRank.vs': vs } : {}) });
  const reference = expectBoolean('reference', (options as { reference?: unknown } | undefined)?.reference, false);
  if (!reference && gemmRunsInline(a.w, a.m, options)) {
    callNativeSync('gemmW4A8LowRank', () => native().cpuGemmW4A8LowRank(a.w, a.x, a.m, a.y, a.bias, a.act, r, u, us, v, vs, reference, true));
    return a.y;
  }
  await callNative('gemmW4A8LowRank', () => native().cpuGemmW4A8LowRank(a.w, a.x, a.m, a.y, a.bias, a.act, r, u, us, v, vs, reference, false) as Promise<void>);
  return a.y;
}

// ---- data for tests and benchmarks ---------------------------------------------------------

/** Seeded fill (native): Float32 uniform [lo, hi) or normal(lo, hi); Uint8 uniform integers lo..hi. */
export function fillRandom(out: Float32Array | Uint8Array, seed: number, lo: number, hi: number, normal = false): void {
  const arr = expectTypedArray('out', out, ['Float32Array', 'Uint8Array']);
  expectInt('seed', seed, 0);
  expectNumber('lo', lo);
  expectNumber('hi', hi, { min: lo });
  native().cpuFillRandom(arr, seed, lo, hi, expectBoolean('normal', normal, false));
}

/** ||y - ref||_2 / ||ref||_2 over the first `count` values (default: all of ref), computed natively. */
export function relativeErrorL2(y: Float32Array, ref: Float64Array, count = isTypedArray(ref, 'Float64Array') ? ref.length : 0): number {
  expectTypedArray('y', y, 'Float32Array');
  expectTypedArray('ref', ref, 'Float64Array');
  expectInt('count', count, 1, Math.min(y.length, ref.length));
  return native().cpuRelativeErrorL2(y, ref, count);
}
