// Validated, typed wrappers over the CPU kernels (native/addon/cpu_kernels.cpp):
// W4A8 GEMM (int8 activations quantized inside the call), W4A16 (fp32 activations), the Kronecker
// adapter y += sum_i (A_i kron B_i) x, the fused W4A8 + Kronecker call, and their references.
//
// Weights are in the canonical MatMulNBits layout (native/include/w4a8/formats.h): codes
// [n][blocks][groupSize/2] low nibble first, scales [n][blocks], optional packed zero points
// [n][ceil(blocks/2)] (absent: 8). Activations x are [m][k] row-major; outputs y are [m][n].
// Every argument is checked here with a message that names it; the addon re-checks lengths.
import { native, type NativeBinding } from './binding';

export type CpuIsa = 'scalar' | 'avx2' | 'avx512vnni' | 'amx';
export const CPU_ISAS: readonly CpuIsa[] = ['scalar', 'avx2', 'avx512vnni', 'amx'];
export type CpuWeightFormat = 'int4' | 'fp4';
/** int8 activation scales: one per (token, weight K-group) like ORT accuracy_level 4, or one per token. */
export type ActQuantName = 'token-group' | 'token';
export const GROUP_SIZES: readonly number[] = [16, 32, 64, 128, 256];
/** Dimensions accepted by the addon (n, k, m, and aRows*bRows / aCols*bCols). */
export const MAX_DIM = 2 ** 24;

/** A weight prepacked for the CPU kernels. Holds native memory until dispose() or GC. */
export interface CpuPackedWeight {
  readonly n: number;
  readonly k: number;
  readonly groupSize: number;
  readonly format: CpuWeightFormat;
  readonly isa: CpuIsa;
  /** Native bytes held (packed layout plus the canonical copy when kept). */
  readonly bytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

/** The raw addon functions (positional arguments; see cpu_kernels.cpp). Use the wrappers below. */
export interface CpuKernelBinding {
  CpuPackedWeight: new (...args: never[]) => CpuPackedWeight;
  cpuIsas(): string[];
  cpuDefaultIsa(): string;
  cpuIsaUnavailableReason(isa: string): string;
  cpuIsaOverrideIgnored(): boolean;
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  cpuPrepackWeight(format: 0 | 1, n: number, k: number, groupSize: number, codes: Uint8Array, scales: Float32Array,
    zeroPoints: Uint8Array | null, isa: string | null, sync?: boolean, keepCanonical?: boolean): Promise<CpuPackedWeight> | CpuPackedWeight;
  cpuGemmW4A8(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null, act: 0 | 1,
    isa: string | null, sync?: boolean): Promise<void> | undefined;
  cpuGemmW4A8Reference(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null,
    act: 0 | 1, sync?: boolean): Promise<void> | undefined;
  cpuGemmW4A16(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null,
    isa: string | null, sync?: boolean): Promise<void> | undefined;
  cpuGemmW4A16Reference(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null,
    sync?: boolean): Promise<void> | undefined;
  cpuGemmDequantizedF64(w: CpuPackedWeight, x: Float32Array, m: number, y: Float64Array, sync?: boolean): Promise<void> | undefined;
  cpuDequantizeKN(w: CpuPackedWeight, out: Float32Array, sync?: boolean): Promise<void> | undefined;
  cpuKroneckerAdd(terms: number, aRows: number, aCols: number, bRows: number, bCols: number, a: Float32Array,
    b: Float32Array, x: Float32Array, m: number, y: Float32Array, isa: string | null, sync?: boolean): Promise<void> | undefined;
  cpuGemmW4A8Kron(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null, act: 0 | 1,
    terms: number, aRows: number, aCols: number, bRows: number, bCols: number, a: Float32Array, b: Float32Array,
    reference: boolean, sync?: boolean): Promise<void> | undefined;
  cpuFillRandom(out: Float32Array | Uint8Array, seed: number, lo: number, hi: number, normal?: boolean): void;
  cpuRelativeErrorL2(y: Float32Array, ref: Float64Array, count: number): number;
}

function raw(): CpuKernelBinding {
  const b = native() as NativeBinding & Partial<CpuKernelBinding>;
  if (typeof b.cpuPrepackWeight !== 'function') {
    throw new Error('this build of the w4a8 addon has no CPU kernels (cpu_kernels.cpp); rebuild with `npm run build`');
  }
  return b as unknown as CpuKernelBinding;
}

/** The raw binding, for tests that feed it wrong arguments on purpose. */
export function rawCpuKernels(): CpuKernelBinding {
  return raw();
}

// ---- argument checks ------------------------------------------------------------------------

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as { length?: number }).length ?? v.byteLength})`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'no prototype'})` : typeof v;
}

function expectInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`Expected an integer for ${name} but received ${describe(v)}`);
  }
  if (v < min || v > max) throw new RangeError(`Expected ${name} in ${min}..${max} but received ${v}`);
  return v;
}

function expectArray<T extends Float32Array | Float64Array | Uint8Array>(
  name: string, v: unknown, ctor: { new (n: number): T; name: string }, length: number, explain: string,
): T {
  // Compare by name too: jest realms and worker threads hand over typed arrays of another realm.
  const ok = v instanceof ctor || (ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === `[object ${ctor.name}]`);
  if (!ok) throw new TypeError(`Expected ${name} to be a ${ctor.name} but received ${describe(v)}`);
  const arr = v as T;
  if (arr.length !== length) {
    throw new RangeError(`Expected ${name} of length ${length} (${explain}) but received ${arr.length}`);
  }
  return arr;
}

function expectOptions(name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  const proto = v !== null && typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`Expected ${name} to be a plain object but received ${describe(v)}`);
  return v as Record<string, unknown>;
}

function expectIsa(v: unknown, allowReference = false): string | null {
  if (v === undefined || v === null) return null;
  if (allowReference && v === 'reference') return 'reference';
  if (typeof v !== 'string' || !(CPU_ISAS as readonly string[]).includes(v)) {
    throw new TypeError(`Expected isa to be one of ${CPU_ISAS.join(', ')}${allowReference ? ', reference' : ''} but received ${describe(v)}`);
  }
  const reason = raw().cpuIsaUnavailableReason(v);
  if (reason) throw new RangeError(`isa '${v}' is not available on this machine (${reason}); leave isa unset for the best one (${cpuDefaultIsa()})`);
  return v;
}

function expectAct(v: unknown): 0 | 1 {
  if (v === undefined || v === 'token-group') return 0;
  if (v === 'token') return 1;
  throw new TypeError(`Expected act to be 'token-group' or 'token' but received ${describe(v)}`);
}

function expectWeight(v: unknown): CpuPackedWeight {
  const ctor = raw().CpuPackedWeight;
  if (!(v instanceof ctor)) throw new TypeError(`Expected weight to be a CpuPackedWeight from prepackWeight() but received ${describe(v)}`);
  if (v.disposed) throw new Error('the CpuPackedWeight was disposed; prepack it again');
  return v;
}

function rejectAliases(out: ArrayBufferView, inputs: Record<string, ArrayBufferView | undefined>): void {
  for (const [name, v] of Object.entries(inputs)) {
    if (!v || v.buffer !== out.buffer) continue;
    if (out.byteOffset < v.byteOffset + v.byteLength && v.byteOffset < out.byteOffset + out.byteLength) {
      throw new RangeError(`the output array overlaps ${name}; pass a separate output array`);
    }
  }
}

// ---- ISA and threads -----------------------------------------------------------------------

/** ISAs this CPU and OS can run, in increasing order of preference. */
export function cpuIsas(): CpuIsa[] {
  return raw().cpuIsas() as CpuIsa[];
}
/** The ISA kernels use when none is given (best available, or W4A8_ISA). */
export function cpuDefaultIsa(): CpuIsa {
  return raw().cpuDefaultIsa() as CpuIsa;
}
/** True when the W4A8_ISA environment variable named an ISA this CPU lacks (the best one is used instead). */
export function cpuIsaOverrideIgnored(): boolean {
  return raw().cpuIsaOverrideIgnored();
}
/** '' when `isa` runs here, otherwise why not (for skip messages). */
export function cpuIsaUnavailableReason(isa: CpuIsa): string {
  if (!(CPU_ISAS as readonly string[]).includes(isa)) throw new TypeError(`Expected isa to be one of ${CPU_ISAS.join(', ')} but received ${describe(isa)}`);
  return raw().cpuIsaUnavailableReason(isa);
}
/** Kernel threads (0 restores the default: all hardware threads). Results do not depend on it. */
export function setNumThreads(threads: number): void {
  raw().setNumThreads(expectInt('threads', threads, 0, 1024));
}
export function numThreads(): number {
  return raw().getNumThreads();
}

// ---- weights -------------------------------------------------------------------------------

export interface PrepackOptions {
  format: CpuWeightFormat;
  /** Output channels. */
  n: number;
  /** Input channels. */
  k: number;
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  /** int4 asymmetric only; absent means every zero point is 8. */
  zeroPoints?: Uint8Array;
  /** Kernels to run by default; the best available when unset. */
  isa?: CpuIsa;
  /** Keep a copy of the canonical arrays (needed by W4A16, the references, dequantizeKN). Default true. */
  keepCanonical?: boolean;
}

type PrepackArgs = Parameters<CpuKernelBinding['cpuPrepackWeight']>;

function prepackArgs(options: unknown): PrepackArgs {
  const o = expectOptions('prepack options', options);
  if (options === undefined) throw new TypeError('Expected prepack options { format, n, k, groupSize, codes, scales } but received undefined');
  if (o.format !== 'int4' && o.format !== 'fp4') throw new TypeError(`Expected format 'int4' or 'fp4' but received ${describe(o.format)}`);
  const n = expectInt('n', o.n, 1, MAX_DIM);
  const k = expectInt('k', o.k, 1, MAX_DIM);
  if (typeof o.groupSize !== 'number' || !GROUP_SIZES.includes(o.groupSize)) {
    throw new RangeError(`Expected groupSize in ${GROUP_SIZES.join(', ')} but received ${describe(o.groupSize)}`);
  }
  const gs = o.groupSize;
  const blocks = Math.ceil(k / gs);
  const codes = expectArray('codes', o.codes, Uint8Array, n * blocks * (gs / 2), `n=${n} x ${blocks} blocks x ${gs / 2} bytes`);
  const scales = expectArray('scales', o.scales, Float32Array, n * blocks, `n=${n} x ${blocks} blocks`);
  let zeroPoints: Uint8Array | null = null;
  if (o.zeroPoints !== undefined && o.zeroPoints !== null) {
    if (o.format === 'fp4') throw new RangeError('fp4 weights have no zero points; drop zeroPoints');
    zeroPoints = expectArray('zeroPoints', o.zeroPoints, Uint8Array, n * Math.ceil(blocks / 2), `n=${n} x ${Math.ceil(blocks / 2)} bytes for ${blocks} blocks`);
  }
  const isa = expectIsa(o.isa);
  if (o.keepCanonical !== undefined && typeof o.keepCanonical !== 'boolean') {
    throw new TypeError(`Expected keepCanonical to be a boolean but received ${describe(o.keepCanonical)}`);
  }
  return [o.format === 'fp4' ? 1 : 0, n, k, gs, codes, scales, zeroPoints, isa, false, o.keepCanonical !== false];
}

/** Prepack a canonical weight for the CPU kernels (on the libuv pool). The arrays are copied. */
export async function prepackWeight(options: PrepackOptions): Promise<CpuPackedWeight> {
  const args = prepackArgs(options);
  args[8] = false;
  return raw().cpuPrepackWeight(...args) as Promise<CpuPackedWeight>;
}

/** prepackWeight on the calling thread (small weights). */
export function prepackWeightSync(options: PrepackOptions): CpuPackedWeight {
  const args = prepackArgs(options);
  args[8] = true;
  return raw().cpuPrepackWeight(...args) as CpuPackedWeight;
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
  const xs = expectArray('x', x, Float32Array, tokens * w.k, `m=${tokens} x k=${w.k}`);
  const o = expectOptions('options', options);
  const bias = o.bias === undefined || o.bias === null ? null : expectArray('bias', o.bias, Float32Array, w.n, `n=${w.n}`);
  const y = o.out === undefined || o.out === null ? new Float32Array(tokens * w.n) : expectArray('out', o.out, Float32Array, tokens * w.n, `m=${tokens} x n=${w.n}`);
  rejectAliases(y, { x: xs, bias: bias ?? undefined });
  return { w, x: xs, m: tokens, y, bias, act: expectAct(o.act), isa: expectIsa(o.isa) };
}

/** W4A8: y = x W^T (+bias), x quantized to int8 inside the call. */
export async function gemmW4A8(weight: CpuPackedWeight, x: Float32Array, m: number, options?: GemmOptions): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await raw().cpuGemmW4A8(a.w, a.x, a.m, a.y, a.bias, a.act, a.isa, false);
  return a.y;
}

/** gemmW4A8 on the calling thread: blocks the event loop (tiny calls, benchmarks). */
export function gemmW4A8Sync(weight: CpuPackedWeight, x: Float32Array, m: number, options?: GemmOptions): Float32Array {
  const a = gemmArgs(weight, x, m, options);
  raw().cpuGemmW4A8(a.w, a.x, a.m, a.y, a.bias, a.act, a.isa, true);
  return a.y;
}

/** The scalar reference that defines W4A8's numerics (single-threaded). */
export async function gemmW4A8Reference(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'isa'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await raw().cpuGemmW4A8Reference(a.w, a.x, a.m, a.y, a.bias, a.act, false);
  return a.y;
}

/** W4A16: fp32 activations, weights dequantized on the fly. */
export async function gemmW4A16(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await raw().cpuGemmW4A16(a.w, a.x, a.m, a.y, a.bias, a.isa, false);
  return a.y;
}

export function gemmW4A16Sync(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act'>): Float32Array {
  const a = gemmArgs(weight, x, m, options);
  raw().cpuGemmW4A16(a.w, a.x, a.m, a.y, a.bias, a.isa, true);
  return a.y;
}

/** W4A16's scalar reference (float64 accumulation). */
export async function gemmW4A16Reference(weight: CpuPackedWeight, x: Float32Array, m: number, options?: Omit<GemmOptions, 'act' | 'isa'>): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  await raw().cpuGemmW4A16Reference(a.w, a.x, a.m, a.y, a.bias, false);
  return a.y;
}

/** x times the exactly dequantized weight, in float64 (the ground truth of kernel error). */
export async function gemmDequantizedF64(weight: CpuPackedWeight, x: Float32Array, m: number): Promise<Float64Array> {
  const w = expectWeight(weight);
  const tokens = expectInt('m', m, 1, MAX_DIM);
  const xs = expectArray('x', x, Float32Array, tokens * w.k, `m=${tokens} x k=${w.k}`);
  const y = new Float64Array(tokens * w.n);
  await raw().cpuGemmDequantizedF64(w, xs, tokens, y, false);
  return y;
}

/** The weight dequantized to the ONNX MatMul B layout [k][n] (fp32). */
export async function dequantizeKN(weight: CpuPackedWeight): Promise<Float32Array> {
  const w = expectWeight(weight);
  const out = new Float32Array(w.k * w.n);
  await raw().cpuDequantizeKN(w, out, false);
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
  const o = expectOptions('kron', kron);
  if (kron === undefined) throw new TypeError('Expected kron factors { terms, aRows, aCols, bRows, bCols, a, b } but received undefined');
  const terms = expectInt('kron.terms', o.terms, 1, 1 << 16);
  const aRows = expectInt('kron.aRows', o.aRows, 1, MAX_DIM);
  const aCols = expectInt('kron.aCols', o.aCols, 1, MAX_DIM);
  const bRows = expectInt('kron.bRows', o.bRows, 1, MAX_DIM);
  const bCols = expectInt('kron.bCols', o.bCols, 1, MAX_DIM);
  if (aRows * bRows > MAX_DIM || aCols * bCols > MAX_DIM) {
    throw new RangeError(`Expected aRows*bRows and aCols*bCols at most ${MAX_DIM} but received ${aRows * bRows} and ${aCols * bCols}`);
  }
  const a = expectArray('kron.a', o.a, Float32Array, terms * aRows * aCols, `terms=${terms} x aRows=${aRows} x aCols=${aCols}`);
  const b = expectArray('kron.b', o.b, Float32Array, terms * bRows * bCols, `terms=${terms} x bRows=${bRows} x bCols=${bCols}`);
  return { terms, aRows, aCols, bRows, bCols, a, b };
}

/** y [m][aRows*bRows] += sum_i (A_i kron B_i) x [m][aCols*bCols], in place; isa 'reference' = float64 twin. */
export async function kroneckerAdd(kron: KronFactors, x: Float32Array, m: number, y: Float32Array, options?: { isa?: CpuIsa | 'reference' }): Promise<void> {
  const kt = kronArgs(kron);
  const tokens = expectInt('m', m, 1, MAX_DIM);
  const k = kt.aCols * kt.bCols, n = kt.aRows * kt.bRows;
  const xs = expectArray('x', x, Float32Array, tokens * k, `m=${tokens} x aCols*bCols=${k}`);
  const ys = expectArray('y', y, Float32Array, tokens * n, `m=${tokens} x aRows*bRows=${n}`);
  rejectAliases(ys, { x: xs, 'kron.a': kt.a, 'kron.b': kt.b });
  const isa = expectIsa(expectOptions('options', options).isa, true);
  await raw().cpuKroneckerAdd(kt.terms, kt.aRows, kt.aCols, kt.bRows, kt.bCols, kt.a, kt.b, xs, tokens, ys, isa, false);
}

/** y = W4A8(x) (+bias) + sum_i (A_i kron B_i) x; `reference` runs both scalar twins. */
export async function gemmW4A8Kron(weight: CpuPackedWeight, kron: KronFactors, x: Float32Array, m: number,
  options?: Omit<GemmOptions, 'isa'> & { reference?: boolean }): Promise<Float32Array> {
  const a = gemmArgs(weight, x, m, options);
  const kt = kronArgs(kron);
  if (kt.aRows * kt.bRows !== a.w.n || kt.aCols * kt.bCols !== a.w.k) {
    throw new RangeError(`Expected kron to map k=${a.w.k} to n=${a.w.n} but aCols*bCols=${kt.aCols * kt.bCols} and aRows*bRows=${kt.aRows * kt.bRows}`);
  }
  rejectAliases(a.y, { 'kron.a': kt.a, 'kron.b': kt.b });
  const reference = (options as { reference?: unknown } | undefined)?.reference;
  if (reference !== undefined && typeof reference !== 'boolean') throw new TypeError(`Expected reference to be a boolean but received ${describe(reference)}`);
  await raw().cpuGemmW4A8Kron(a.w, a.x, a.m, a.y, a.bias, a.act, kt.terms, kt.aRows, kt.aCols, kt.bRows, kt.bCols, kt.a, kt.b, reference === true, false);
  return a.y;
}

// ---- data for tests and benchmarks ---------------------------------------------------------

/** Seeded fill (native): Float32 uniform [lo, hi) or normal(lo, hi); Uint8 uniform integers lo..hi. */
export function fillRandom(out: Float32Array | Uint8Array, seed: number, lo: number, hi: number, normal = false): void {
  if (!(out instanceof Float32Array) && !(out instanceof Uint8Array)) throw new TypeError(`Expected out to be a Float32Array or Uint8Array but received ${describe(out)}`);
  expectInt('seed', seed, 0, Number.MAX_SAFE_INTEGER);
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) throw new RangeError(`Expected finite lo <= hi but received ${lo}, ${hi}`);
  raw().cpuFillRandom(out, seed, lo, hi, normal);
}

/** ||y - ref||_2 / ||ref||_2 over the first `count` values (default: all of ref), computed natively. */
export function relativeErrorL2(y: Float32Array, ref: Float64Array, count = ref.length): number {
  if (!(y instanceof Float32Array)) throw new TypeError(`Expected y to be a Float32Array but received ${describe(y)}`);
  if (!(ref instanceof Float64Array)) throw new TypeError(`Expected ref to be a Float64Array but received ${describe(ref)}`);
  expectInt('count', count, 1, Math.min(y.length, ref.length));
  return raw().cpuRelativeErrorL2(y, ref, count);
}
