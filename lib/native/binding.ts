// Loads the N-API addon and types every one of its exports (NativeBinding). Callers outside
// lib/native never touch it: they call the validating wrappers beside this file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { W4A8Error } from '../util/errors';
import type { WeightFormat } from './formats';

export interface BuildInfo {
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaDevice?: string;
  cudaComputeCapability?: string;
  napiVersion: number;
}

/** glibc's mallinfo2 (available false elsewhere). */
export interface NativeMallocStats {
  available: boolean;
  arenaBytes?: number;
  mmappedBytes?: number;
  inUseBytes?: number;
  freeBytes?: number;
  topReleasableBytes?: number;
}

/** quant.h WeightQuantConfig as the glue reads it (format 0 int4 / 1 fp4, grouping 0 along K / 1 along N). */
export interface NativeWeightConfig {
  format: 0 | 1;
  symmetric: boolean;
  groupSize: number;
  grouping: 0 | 1;
  pow2Scales: boolean;
  clipRatio: number;
  perChannelBlockSize: number;
}

export interface NativeQuantSizes {
  codeBytes: number;
  scaleCount: number;
  zeroPointBytes: number;
  layoutGroupSize: number;
}

/** One layer of an AWQ search; the output arrays are filled in place. */
export interface NativeAwqLayer {
  w: Float32Array;
  n: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array | null;
  dequantized: Float32Array | null;
  groupClip: Float32Array;
}

/** act: 0 none, 1 int8, 2 fp8; kernelAct: -1 float simulation, else the index into KERNEL_ACT_QUANTS. */
export interface NativeAwqOptions {
  gridSize: number;
  clipGrid: number;
  clipMin: number;
  act: 0 | 1 | 2;
  duoScaling: boolean;
  kernelAct: number;
}

export interface NativeAwqResult {
  alpha: number;
  duoScaling: boolean;
  errorBefore: number;
  errorAfterScale: number;
  errorAfter: number;
  clipped: boolean;
  secondsScaleSearch: number;
  secondsClipSearch: number;
  layers: { errorBefore: number; errorAfter: number }[];
}

export interface NativeGptqOptions {
  damp: number;
  actOrder: boolean;
  blockSize: number;
  clipGrid: number;
  clipMin: number;
  clipHWeighted: boolean;
  factorF32: boolean;
}

/** compensate.h CompensateConfig: method 0 lorc, 1 lorc-aware, 2 kron-aware. */
export interface NativeCompensateConfig {
  method: 0 | 1 | 2;
  rank: number;
  k1: number;
  n1: number;
  damp: number;
  maxIters: number;
  tol: number;
}

export interface NativeCompensateResult {
  weightedBefore: number;
  weightedAfter: number;
  iterations: number;
}

export interface NativeGptqResult {
  proxyLoss: number;
  dampUsed: number;
  deadInputs: number;
}

/** A native calibration statistics accumulator (calib_bindings.cpp). */
export interface NativeCalibStats {
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

/** The CPU kernel paths (native/src/cpu), in increasing order of preference. */
export type CpuIsa = 'scalar' | 'avx2' | 'avx512vnni' | 'amx';

/** A weight prepacked for the CPU kernels. Holds native memory until dispose() or GC. */
export interface CpuPackedWeight {
  readonly n: number;
  readonly k: number;
  readonly groupSize: number;
  readonly format: WeightFormat;
  readonly isa: CpuIsa;
  /** Native bytes held (packed layout plus the canonical copy when kept). */
  readonly bytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

/** An ONNX Runtime session held by the addon (opaque). */
export type NativeOrtHandle = { readonly __brand: 'NativeOrtHandle' };
/** A model input or output: ONNX element type number, dims (a string where symbolic). */
export interface NativeOrtValueInfo { name: string; isTensor: boolean; type: number; shape: (number | string)[] }
export interface NativeOrtSessionInfo { handle: NativeOrtHandle; inputs: NativeOrtValueInfo[]; outputs: NativeOrtValueInfo[] }
export interface NativeOrtFeed { name: string; type: number; dims: number[]; data: ArrayBufferView }
export interface NativeOrtOutput { name: string; type: number; dims: number[]; data: ArrayBuffer }

/**
 * Every export of the addon (native/addon/*_bindings.cpp registrations), with the positional
 * arguments the glue reads. Only the wrappers beside this file call these: they validate every
 * argument first and map native errors (status.ts). A new export is added here and to NATIVE_EXPORTS below.
 */
export interface NativeBinding {
  // build_info_bindings.cpp
  readonly buildInfo: BuildInfo;

  // process_memory_bindings.cpp: glibc's mallinfo2 and malloc_trim(0); see process_memory.ts.
  mallocStats(): NativeMallocStats;
  releaseFreedMemory(): boolean;

  // tensor_codecs_bindings.cpp: fp16 / bf16 <-> fp32 (round to nearest even) and a NaN/Inf count; see tensor_codecs.ts.
  float16ToFloat32(src: Uint16Array, dst: Float32Array): void;
  bfloat16ToFloat32(src: Uint16Array, dst: Float32Array): void;
  float32ToFloat16(src: Float32Array, dst: Uint16Array): void;
  float32ToBfloat16(src: Float32Array, dst: Uint16Array): void;
  countNonFinite(src: Float32Array): number;

  // eval_bindings.cpp (type code 0 = Float32Array logits, 1 = Uint16Array fp16 bits); see eval_ops.ts.
  tokenNll(logits: Float32Array | Uint16Array, type: 0 | 1, rows: number, vocab: number, targets: Int32Array, out: Float64Array): number;
  tokenNllAsync(logits: Float32Array | Uint16Array, type: 0 | 1, rows: number, vocab: number, targets: Int32Array, out: Float64Array): Promise<number>;
  rowArgmax(logits: Float32Array | Uint16Array, type: 0 | 1, row: number, vocab: number): number;
  rowSample(logits: Float32Array | Uint16Array, type: 0 | 1, row: number, vocab: number, temperature: number, topK: number, topP: number, coin: number): number;

  // tensor_layout_bindings.cpp: [rows, cols] -> [cols, rows] fp32 on the libuv pool; rope tables as llama2.c computes them; see tensor_layout.ts.
  transposeF32(src: Float32Array, rows: number, cols: number, dst: Float32Array): Promise<void>;
  ropeTablesF32(seqLen: number, headSize: number, theta: number, cos: Float32Array, sin: Float32Array): Promise<void>;
  // tensor_layout_bindings.cpp: canonical int4 codes [rows][packedCols] -> ONNX INT4/UINT4 [validCols, rows] packed, pad nibble 0; see tensor_layout.ts.
  transposeNibbles(packed: Uint8Array, rows: number, packedCols: number, validCols: number, flipSign: boolean, out: Uint8Array): Promise<void>;
  // tensor_layout_bindings.cpp: element-wise fp32 a / b and 1 / a (IEEE, as ONNX Div / Reciprocal); see tensor_layout.ts.
  divideF32(a: Float32Array, b: Float32Array, out: Float32Array): Promise<void>;
  reciprocalF32(a: Float32Array, out: Float32Array): Promise<void>;
  // out = alpha * left @ right ([rows][cols]) or its transpose; see tensor_layout.ts matrixProduct.
  matrixProductF32(left: Float32Array, right: Float32Array, rows: number, rank: number, cols: number, alpha: number,
    transposeOut: boolean, out: Float32Array): Promise<void>;

  // quant_bindings.cpp: outputs are allocated by the caller from quantSizes; see quant.ts.
  quantSizes(k: number, n: number, cfg: NativeWeightConfig): NativeQuantSizes;
  quantizeWeight(w: Float32Array, k: number, n: number, cfg: NativeWeightConfig, groupClip: Float32Array | null, codes: Uint8Array,
    scales: Float32Array, zeroPoints: Uint8Array | null, dequantized: Float32Array | null): Promise<void>;
  quantizeInt8Rows(src: Float32Array, rows: number, cols: number, q: Int8Array, scales: Float32Array): Promise<void>;
  fakeQuantActivations(x: Float32Array, m: number, k: number, format: 0 | 1 | 2, out: Float32Array, rowScales: Float32Array | null): Promise<void>;
  layerOutputError(x: Float32Array, rows: number, k: number, w: Float32Array, wq: Float32Array, n: number, act: 0 | 1 | 2,
    inputScale: Float32Array | null): Promise<number>;
  awqSearch(x: Float32Array, rows: number, k: number, meanAbs: Float32Array | null, layers: NativeAwqLayer[], cfg: NativeWeightConfig,
    awq: NativeAwqOptions, scalesOut: Float32Array): Promise<NativeAwqResult>;
  gptqQuantize(w: Float32Array, k: number, n: number, hessian: Float64Array | Float32Array, cfg: NativeWeightConfig,
    gptq: NativeGptqOptions, codes: Uint8Array, scales: Float32Array, zeroPoints: Uint8Array | null,
    dequantized: Float32Array | null, inputScale: Float32Array | null): Promise<NativeGptqResult>;
  truncatedSvd(a: Float64Array, m: number, n: number, rank: number, u: Float64Array, s: Float64Array, vt: Float64Array,
    powerIters: number, oversample: number, seed: number): Promise<void>;
  compensateError(w: Float32Array, wq: Float32Array, k: number, n: number, hessian: Float64Array | Float32Array | null,
    inputScale: Float32Array | null, cfg: NativeCompensateConfig, a: Float32Array, b: Float32Array, compensated: Float32Array | null,
    history: Float64Array | null): Promise<NativeCompensateResult>;
  gemmIsa(): string;

  // ort_session_bindings.cpp: ONNX Runtime opened with dlopen, sessions with the com.w4a8 domain; see ort_runtime.ts.
  ortOpen(libraryPath: string): string;
  ortCreateSession(modelPath: string, intraOpThreads: number, configEntries: [string, string][]): Promise<NativeOrtSessionInfo>;
  ortRun(handle: NativeOrtHandle, feeds: NativeOrtFeed[], fetches: string[], lastRowOf?: string[], into?: NativeOrtFeed[]): Promise<NativeOrtOutput[]>;
  ortRelease(handle: NativeOrtHandle): void;

  // calib_bindings.cpp: hessianMode 0 none, 1 fp32, 2 fp64; see calib_stats.ts.
  CalibStats: new (k: number, sampleRows: number, seed: number, hessianMode: 0 | 1 | 2) => NativeCalibStats;

  // cpu_kernels_bindings.cpp: format 0 int4, 1 fp4; act 0 per (token, K-group), 1 per token; a trailing
  // `sync` runs the call on this thread (returns undefined) instead of the pool (returns a Promise); see kernels.ts.
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
    reference: boolean, sync?: boolean, bTransposed?: boolean): Promise<void> | undefined;
  cpuGemmW4A8LowRank(w: CpuPackedWeight, x: Float32Array, m: number, y: Float32Array, bias: Float32Array | null, act: 0 | 1, r: number,
    u: Float32Array | Int8Array, us: Float32Array | null, v: Float32Array | Int8Array, vs: Float32Array | null, reference: boolean,
    sync?: boolean): Promise<void> | undefined;
  cpuFillRandom(out: Float32Array | Uint8Array, seed: number, lo: number, hi: number, normal?: boolean): void;
  cpuRelativeErrorL2(y: Float32Array, ref: Float64Array, count: number): number;

  // cuda_kernels_bindings.cpp: only in builds with CUDA (hence optional); the Promises reject without a device; see cuda.ts.
  cudaLinear?(kind: 0 | 1, format: 0 | 1, n: number, k: number, groupSize: number, codes: Uint8Array, scales: Float32Array,
    zeroPoints: Uint8Array | null, m: number, x: Float32Array, y: Float32Array): Promise<void>;
  cudaQuantizeActivations?(m: number, k: number, x: Float32Array, qInt8: Int8Array | null, scalesInt8: Float32Array | null,
    qFp8: Uint8Array | null, scalesFp8: Float32Array | null): Promise<void>;
  cudaKroneckerAdd?(terms: number, aRows: number, aCols: number, bRows: number, bCols: number, a: Float32Array,
    b: Float32Array, m: number, x: Float32Array, y: Float32Array): Promise<void>;
}

/** Which exports every build has ('always') and which only CUDA builds have; checked when the addon loads. */
export const NATIVE_EXPORTS: { readonly [K in keyof NativeBinding]-?: 'always' | 'cuda' } = {
  buildInfo: 'always',
  mallocStats: 'always', releaseFreedMemory: 'always',
  float16ToFloat32: 'always', bfloat16ToFloat32: 'always', float32ToFloat16: 'always', float32ToBfloat16: 'always', countNonFinite: 'always',
  tokenNll: 'always', tokenNllAsync: 'always', rowArgmax: 'always', rowSample: 'always',
  transposeF32: 'always', ropeTablesF32: 'always',
  transposeNibbles: 'always', divideF32: 'always', reciprocalF32: 'always', matrixProductF32: 'always',
  quantSizes: 'always', quantizeWeight: 'always', fakeQuantActivations: 'always', quantizeInt8Rows: 'always', layerOutputError: 'always', awqSearch: 'always',
  gptqQuantize: 'always', truncatedSvd: 'always', compensateError: 'always', gemmIsa: 'always',
  CalibStats: 'always',
  CpuPackedWeight: 'always', cpuIsas: 'always', cpuDefaultIsa: 'always', cpuIsaUnavailableReason: 'always', cpuIsaOverrideIgnored: 'always',
  setNumThreads: 'always', getNumThreads: 'always', cpuPrepackWeight: 'always', cpuGemmW4A8: 'always', cpuGemmW4A8Reference: 'always',
  cpuGemmW4A16: 'always', cpuGemmW4A16Reference: 'always', cpuGemmDequantizedF64: 'always', cpuDequantizeKN: 'always',
  cpuKroneckerAdd: 'always', cpuGemmW4A8Kron: 'always', cpuGemmW4A8LowRank: 'always', cpuFillRandom: 'always', cpuRelativeErrorL2: 'always',
  ortOpen: 'always', ortCreateSession: 'always', ortRun: 'always', ortRelease: 'always',
  cudaLinear: 'cuda', cudaQuantizeActivations: 'cuda', cudaKroneckerAdd: 'cuda',
};

let cached: NativeBinding | undefined;

/** Candidate locations of w4a8.node: the cmake-js build of this checkout, then an override. */
function candidates(): string[] {
  const root = path.resolve(__dirname, '..', '..');
  const list = [
    path.join(root, 'build', 'addon', 'Release', 'w4a8.node'),
    path.join(root, 'build', 'addon', 'Debug', 'w4a8.node'),
  ];
  if (process.env.W4A8_ADDON) list.unshift(path.resolve(process.env.W4A8_ADDON));
  return list;
}

export function native(): NativeBinding {
  if (cached) return cached;
  const tried = candidates();
  const found = tried.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`the w4a8 native addon is not built (looked for ${tried.join(', ')}); run \`npm ci\` or \`npm run build\``);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(found) as Record<string, unknown>;
  // An addon built from older sources lacks exports; say so once, not as "x is not a function" later.
  const missing = Object.entries(NATIVE_EXPORTS).filter(([name, when]) => when === 'always' && !(name in loaded)).map(([name]) => name);
  if (missing.length > 0) {
    throw new W4A8Error(`the w4a8 native addon at ${found} lacks ${missing.join(', ')}: it was built from older sources; rebuild it with \`npm run build\``);
  }
  cached = loaded as unknown as NativeBinding;
  return cached;
}
