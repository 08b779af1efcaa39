// Validated, typed wrappers over the native quantizers (native/include/w4a8/quant.h):
// RTN weight quantization, activation fake-quantization, the layer output error, the AWQ search,
// GPTQ and the truncated SVD. Weights are ONNX MatMul B matrices W[K][N] (fp32, row-major).
//
// Numerics (identical in the simulated export): round = nearest, ties to even.
//   int4 symmetric:  scale = absmax / 7, q = clamp(round(w / scale), -8, 7), code = q + 8
//   int4 asymmetric: range [min(min, 0), max(max, 0)], scale = range / 15,
//                    zeroPoint = clamp(round(-lo / scale), 0, 15), code = clamp(round(w / scale) + zp, 0, 15)
//   fp4 (E2M1):      scale = absmax / 6, code = nearest E2M1 value (ties to even mantissa)
//   clipRatio r shrinks the range before the scale is computed; pow2Scales rounds scales up to 2^e.
//   All-zero groups get scale 0 and dequantize to exact zeros.
//   Activations, per token (row): int8 scale = absmax / 127; fp8 scale = absmax / 448 and E4M3FN
//   round-to-nearest-even with saturation (ONNX Cast to FLOAT8E4M3FN, saturate=1).
import { native, type NativeAwqLayer, type NativeWeightConfig } from './binding';
import { GROUP_SIZES, PER_CHANNEL, PER_CHANNEL_BLOCK_SIZE, weightFormatCode, WEIGHT_FORMATS, type WeightFormat } from './formats';
import { callNative } from './status';
import { describe, expectBoolean, expectInt, expectNumber, expectObject, expectOneOf, expectOptions, expectTypedArray } from './validate';

export type WeightFormatName = WeightFormat;
/** 'oc': groups along K inside one output channel (MatMulNBits); 'ic': groups along N inside one input channel. */
export type GroupingName = 'oc' | 'ic';
export type ActFormatName = 'none' | 'int8' | 'fp8';

export interface WeightQuantConfig {
  format: WeightFormatName;
  /** int4 only (fp4 is always symmetric). Default false (asymmetric, with zero points). */
  symmetric?: boolean;
  /** 16, 32, 64, 128 or 256; 0 = one group per channel. */
  groupSize: number;
  grouping?: GroupingName;
  pow2Scales?: boolean;
  /** In (0, 1]; default 1. */
  clipRatio?: number;
  /**
   * Per-channel configs (groupSize 0) in the canonical layout: the block size whose blocks all repeat
   * the channel's scale (16..256, default 128: every kernel and MatMulNBits handle it), or 0 for one
   * block of K rounded up to a power of two (ORT's CPU MatMulNBits misbehaves above 256).
   */
  perChannelBlockSize?: number;
}

export interface QuantizedWeight {
  format: WeightFormatName;
  symmetric: boolean;
  grouping: GroupingName;
  k: number;
  n: number;
  /**
   * 'oc': the MatMulNBits block size of `codes`: the config's groupSize, or for per-channel
   * quantization perChannelBlockSize (every block of a row repeats the channel's scale and zero
   * point), or with perChannelBlockSize 0 K rounded up to a power of two (one block per row).
   * Codes past K are padding.
   * 'ic': the group length along N (N for per channel).
   */
  groupSize: number;
  /** True when one scale covers a whole channel. */
  perChannel: boolean;
  /** 'oc': [N][blocks][groupSize/2] packed, low nibble first. 'ic': [K][N], one code per byte. */
  codes: Uint8Array;
  /** 'oc': [N][blocks]. 'ic': [K][ceil(N/groupSize)]. */
  scales: Float32Array;
  /** Asymmetric int4 only. 'oc': packed [N][ceil(blocks/2)] (low nibble = even block). 'ic': one per byte. */
  zeroPoints?: Uint8Array;
  /** The dequantized weight in the input layout [K][N]. */
  dequantized: Float32Array;
}

/** The pipeline's name for the weight quantization config. */
export type WeightQuantOptions = WeightQuantConfig;

// ---- validation -------------------------------------------------------------------------------

/** Group sizes a quantization config takes: the canonical ones, or 0 for one group per channel. */
const CONFIG_GROUP_SIZES: readonly number[] = [PER_CHANNEL, ...GROUP_SIZES];
const GROUPINGS: readonly GroupingName[] = ['oc', 'ic'];
const ACT_FORMATS: readonly ActFormatName[] = ['none', 'int8', 'fp8'];
const MAX_DIM = 2 ** 30;

function checkFloat32(name: string, value: unknown, length: number, shape: string): Float32Array {
  return expectTypedArray(name, value, 'Float32Array', length, shape);
}

function nativeConfig(cfg: WeightQuantConfig, what = 'config'): NativeWeightConfig {
  const o = expectObject(what, cfg, '{ format, groupSize, ... }');
  const format = expectOneOf(`${what}.format`, o.format, WEIGHT_FORMATS);
  const groupSize = expectInt(`${what}.groupSize`, o.groupSize, 0);
  if (!CONFIG_GROUP_SIZES.includes(groupSize)) {
    throw new RangeError(`Expected ${what}.groupSize in ${CONFIG_GROUP_SIZES.join(', ')} (0 = per channel) but received ${groupSize}`);
  }
  const grouping = expectOneOf(`${what}.grouping`, o.grouping ?? 'oc', GROUPINGS);
  const clipRatio = expectNumber(`${what}.clipRatio`, o.clipRatio ?? 1, { min: 0, minExclusive: true, max: 1 });
  const symmetric = expectBoolean(`${what}.symmetric`, o.symmetric, false);
  const pow2Scales = expectBoolean(`${what}.pow2Scales`, o.pow2Scales, false);
  const perChannelBlockSize = expectInt(`${what}.perChannelBlockSize`, o.perChannelBlockSize ?? PER_CHANNEL_BLOCK_SIZE, 0);
  if (!CONFIG_GROUP_SIZES.includes(perChannelBlockSize)) {
    throw new RangeError(`Expected ${what}.perChannelBlockSize in ${CONFIG_GROUP_SIZES.join(', ')} (0 = K rounded up to a power of two) but received ${perChannelBlockSize}`);
  }
  if (format === 'fp4' && o.symmetric === false) {
    throw new RangeError(`Expected ${what}.symmetric true or unset for fp4 but received false; fp4 is always symmetric: drop symmetric: false or use format 'int4'`);
  }
  return {
    format: weightFormatCode(format),
    symmetric: format === 'fp4' ? true : symmetric,
    groupSize,
    grouping: grouping === 'oc' ? 0 : 1,
    pow2Scales,
    clipRatio,
    perChannelBlockSize,
  };
}

function actCode(act: unknown, what: string): 0 | 1 | 2 {
  return ACT_FORMATS.indexOf(expectOneOf(what, act ?? 'none', ACT_FORMATS)) as 0 | 1 | 2;
}

const NAN_OR_INF = (what: string) =>
  `${what}: the input holds NaN or Inf values (or a Hessian that is not positive definite); the model cannot be quantized as is`;

/** Runs a native quantizer call: the caller's stack on failure, NaN/Inf explained for quantization. */
function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  return callNative(what, run, { numerical: NAN_OR_INF(what) });
}

interface Allocated {
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array | null;
  dequantized: Float32Array;
  layoutGroupSize: number;
}

function allocate(k: number, n: number, cfg: NativeWeightConfig): Allocated {
  const s = native().quantSizes(k, n, cfg);
  return {
    codes: new Uint8Array(s.codeBytes),
    scales: new Float32Array(s.scaleCount),
    zeroPoints: s.zeroPointBytes > 0 ? new Uint8Array(s.zeroPointBytes) : null,
    dequantized: new Float32Array(k * n),
    layoutGroupSize: s.layoutGroupSize,
  };
}

function result(cfg: WeightQuantConfig, nc: NativeWeightConfig, k: number, n: number, a: Allocated): QuantizedWeight {
  return {
    format: cfg.format,
    symmetric: nc.symmetric,
    grouping: nc.grouping === 0 ? 'oc' : 'ic',
    k,
    n,
    groupSize: a.layoutGroupSize,
    perChannel: cfg.groupSize === PER_CHANNEL,
    codes: a.codes,
    scales: a.scales,
    ...(a.zeroPoints ? { zeroPoints: a.zeroPoints } : {}),
    dequantized: a.dequantized,
  };
}

// ---- API ---------------------------------------------------------------------------------------

/** Output sizes of quantizeWeight for a [K][N] weight (to plan memory or preallocate). */
export function quantizedSizes(k: number, n: number, cfg: WeightQuantConfig): { codeBytes: number; scaleCount: number; zeroPointBytes: number; groupSize: number } {
  expectInt('k', k, 1, MAX_DIM);
  expectInt('n', n, 1, MAX_DIM);
  const s = native().quantSizes(k, n, nativeConfig(cfg));
  return { codeBytes: s.codeBytes, scaleCount: s.scaleCount, zeroPointBytes: s.zeroPointBytes, groupSize: s.layoutGroupSize };
}

export interface QuantizeOptions {
  /** A clip ratio per scale ([N][blocks], 'oc' only), replacing cfg.clipRatio (e.g. awqSearch's groupClip). */
  groupClip?: Float32Array;
  /** Name for error messages (e.g. the initializer). */
  name?: string;
}

/** Round-to-nearest quantization of W[K][N] (ONNX MatMul B). Rejects NaN/Inf with a W4A8Error. */
export async function quantizeWeight(w: Float32Array, k: number, n: number, cfg: WeightQuantConfig, options: QuantizeOptions = {}): Promise<QuantizedWeight> {
  expectInt('k', k, 1, MAX_DIM);
  expectInt('n', n, 1, MAX_DIM);
  const nc = nativeConfig(cfg);
  checkFloat32('w', w, k * n, `k=${k} x n=${n}`);
  let clip: Float32Array | null = null;
  const o = expectOptions('options', options);
  if (o.groupClip !== undefined) {
    if (nc.grouping !== 0) throw new RangeError("Expected grouping 'oc' with groupClip but received 'ic'; drop groupClip or group along K");
    clip = checkFloat32('groupClip', o.groupClip, native().quantSizes(k, n, nc).scaleCount, 'one ratio per scale');
  }
  const a = allocate(k, n, nc);
  const b = native();
  await call(`quantizeWeight${options.name ? ` (${options.name})` : ''}`, () =>
    b.quantizeWeight(w, k, n, nc, clip, a.codes, a.scales, a.zeroPoints, a.dequantized));
  return result(cfg, nc, k, n, a);
}

export interface FakeQuantResult {
  /** Fake-quantized X[M][K] (quantized and dequantized). */
  values: Float32Array;
  /** The per-row scales (absmax / 127 or absmax / 448; 0 for an all-zero row). */
  rowScales: Float32Array;
}

/** Per-token dynamic symmetric fake quantization of X[M][K] to int8 or FP8 E4M3FN. */
export async function fakeQuantActivations(x: Float32Array, m: number, k: number, format: ActFormatName): Promise<FakeQuantResult> {
  expectInt('m', m, 0, MAX_DIM);
  expectInt('k', k, 1, MAX_DIM);
  const code = actCode(format, 'format');
  checkFloat32('x', x, m * k, `m=${m} x k=${k}`);
  const values = new Float32Array(m * k);
  const rowScales = new Float32Array(m);
  const b = native();
  await call('fakeQuantActivations', () => b.fakeQuantActivations(x, m, k, code, values, rowScales));
  return { values, rowScales };
}

/** Int8 rows with one fp32 scale each (formats.h "Int8Rows", the per-token int8 quantizer per row): int8 low-rank factors. */
export async function quantizeInt8Rows(src: Float32Array, rows: number, cols: number): Promise<{ q: Int8Array; scales: Float32Array }> {
  expectInt('rows', rows, 1, MAX_DIM);
  expectInt('cols', cols, 1, MAX_DIM);
  checkFloat32('src', src, rows * cols, `rows=${rows} x cols=${cols}`);
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  const b = native();
  await call('quantizeInt8Rows', () => b.quantizeInt8Rows(src, rows, cols, q, scales));
  return { q, scales };
}

/**
 * Relative layer output error ||X W - Qa(X) W'||^2 / ||X W||^2 for X[rows][K] and W, W'[K][N],
 * with Qa the per-token activation fake quantization `act` (default 'none'). With inputScale s[K]
 * (AWQ's scaling), W' is of diag(s) W and the quantized side reads Qa(X diag(1/s)).
 */
export async function layerOutputError(x: Float32Array, rows: number, k: number, w: Float32Array, wq: Float32Array, n: number,
  act: ActFormatName = 'none', inputScale?: Float32Array): Promise<number> {
  expectInt('rows', rows, 1, MAX_DIM);
  expectInt('k', k, 1, MAX_DIM);
  expectInt('n', n, 1, MAX_DIM);
  const code = actCode(act, 'act');
  checkFloat32('x', x, rows * k, `rows=${rows} x k=${k}`);
  checkFloat32('w', w, k * n, `k=${k} x n=${n}`);
  checkFloat32('wq', wq, k * n, `k=${k} x n=${n}`);
  const scale = inputScale === undefined ? null : checkFloat32('inputScale', inputScale, k, `k=${k} (one positive scale per input channel)`);
  const b = native();
  return call('layerOutputError', () => b.layerOutputError(x, rows, k, w, wq, n, code, scale));
}

export interface AwqLayerInput {
  /** W[K][N] of a layer that reads the shared input. */
  w: Float32Array;
  n: number;
  name?: string;
}

export interface AwqSearchArgs {
  /** Sampled input rows X[rows][K] (a few hundred to a few thousand; e.g. CalibStats.sample). */
  x: Float32Array;
  rows: number;
  k: number;
  /** The layers sharing X (q,k,v or gate,up, or one layer). */
  layers: AwqLayerInput[];
  /** Weight quantization ('oc' or 'ic'; the clip search runs for 'oc' only). */
  config: WeightQuantConfig;
  /** Activation format of the deployed model (the search measures with it). Default 'none'. */
  act?: ActFormatName;
  /** Per-input-channel mean |x| over all calibration tokens (default: computed from x). */
  meanAbs?: Float32Array;
  /** Number of alphas i / gridSize, i = 0..gridSize-1 (default 20). */
  gridSize?: number;
  /** Number of clip ratios from 1 down to clipMin (default 11; 1 disables the clip search). */
  clipGrid?: number;
  /** Smallest clip ratio tried (default 0.5). */
  clipMin?: number;
  /** Also search AutoAWQ's weight-aware scales meanAbs^alpha / mean|w|^(1-alpha) (default true). */
  duoScaling?: boolean;
  /**
   * With act 'int8' and grouping 'oc': score candidates with the CPU W4A8 kernels (true int8 x int4
   * numerics) instead of the float simulation, quantizing activations per (token, K-block) as
   * MatMulNBits accuracy_level 4 does, or per token as the sim export does. Default: float simulation.
   */
  kernelActQuant?: KernelActQuant;
}

export const KERNEL_ACT_QUANTS = ['per-token-per-group', 'per-token'] as const;
export type KernelActQuant = (typeof KERNEL_ACT_QUANTS)[number];

export interface AwqLayerResult extends QuantizedWeight {
  name?: string;
  /** The clip ratio chosen per group [N][blocks] (all 1 / config.clipRatio when the clip search was not kept). */
  groupClip: Float32Array;
  /** Mean of groupClip (for reports). */
  meanClip: number;
  /** Relative output error of plain RTN and of the final result, on the sample. */
  errorBefore: number;
  errorAfter: number;
}

export interface AwqSearchResult {
  alpha: number;
  /** The chosen alpha is of the duo family (mean|x|^alpha / mean|w|^(1-alpha)). */
  duoScaling: boolean;
  /**
   * s[K]. The returned layers quantize diag(s) W (codes and dequantized alike); the caller must
   * divide the producer of X by s (the preceding RMSNorm/LayerNorm weight, or an explicit Mul by
   * 1/s) so that X/s feeds them.
   */
  scales: Float32Array;
  /** Summed relative output errors over the layers: plain RTN, after scaling, final. */
  errorBefore: number;
  errorAfterScale: number;
  errorAfter: number;
  /** Whether the per-group clip search was kept (it is only when it lowers the error). */
  clipped: boolean;
  secondsScaleSearch: number;
  secondsClipSearch: number;
  layers: AwqLayerResult[];
}

/**
 * AWQ for layers sharing one input X: for alpha in {0, 1/20, ..., 19/20}, s = max(meanAbs^alpha, 1e-4)
 * and (duoScaling) s = max(meanAbs^alpha / (mean|w|^(1-alpha) + 1e-4), 1e-4), |w| per group over its
 * absmax, normalised by sqrt(max s * min s); each W becomes diag(s) W, is quantized, and the summed output
 * error of Qa(X/s) Q(diag(s) W) against X W picks alpha. Then a clip ratio per group (per output
 * channel for per-channel configs) is chosen by the group's own output error, kept only if the
 * layer error drops. alpha 0 is plain RTN, so errorAfter <= errorBefore.
 */
export async function awqSearch(args: AwqSearchArgs): Promise<AwqSearchResult> {
  expectObject('awqSearch arguments', args, '{ x, rows, k, layers, config, ... }');
  const { x, rows, k, layers } = args;
  expectInt('rows', rows, 1, MAX_DIM);
  expectInt('k', k, 1, MAX_DIM);
  checkFloat32('x', x, rows * k, `rows=${rows} x k=${k}`);
  const nc = nativeConfig(args.config, 'config');
  if (!Array.isArray(layers) || layers.length === 0 || layers.length > 64) {
    throw new RangeError(`Expected layers to be an array of 1 to 64 layers sharing the input but received ${describe(layers)}`);
  }
  const gridSize = expectInt('gridSize', args.gridSize ?? 20, 1, 1000);
  const clipGrid = expectInt('clipGrid', args.clipGrid ?? 11, 1, 1000);
  const clipMin = expectNumber('clipMin', args.clipMin ?? 0.5, { min: 0, minExclusive: true, max: 1 });
  const act = actCode(args.act, 'act');
  const duoScaling = expectBoolean('duoScaling', args.duoScaling, true);
  let kernelAct = -1;
  if (args.kernelActQuant !== undefined) {
    kernelAct = KERNEL_ACT_QUANTS.indexOf(expectOneOf('kernelActQuant', args.kernelActQuant, KERNEL_ACT_QUANTS));
    if (act !== 1 || nc.grouping !== 0) {
      throw new RangeError("Expected act 'int8' and grouping 'oc' with kernelActQuant (the W4A8 kernels run int8 activations on K-blocked weights); drop kernelActQuant for other configurations");
    }
  }
  const meanAbs = args.meanAbs === undefined ? null : checkFloat32('meanAbs', args.meanAbs, k, `k=${k}`);
  const allocs: Allocated[] = [];
  const nativeLayers: NativeAwqLayer[] = layers.map((layer, i) => {
    const label = `layers[${i}]${layer?.name ? ` (${layer.name})` : ''}`;
    expectObject(label, layer, '{ w, n }');
    expectInt(`${label}.n`, layer.n, 1, MAX_DIM);
    checkFloat32(`${label}.w`, layer.w, k * layer.n, `k=${k} x n=${layer.n}`);
    const a = allocate(k, layer.n, nc);
    allocs.push(a);
    return { w: layer.w, n: layer.n, codes: a.codes, scales: a.scales, zeroPoints: a.zeroPoints, dequantized: a.dequantized,
      groupClip: new Float32Array(a.scales.length) };
  });
  const scales = new Float32Array(k);
  const b = native();
  const r = await call('awqSearch', () => b.awqSearch(x, rows, k, meanAbs, nativeLayers, nc, { gridSize, clipGrid, clipMin, act, duoScaling, kernelAct }, scales));
  return {
    alpha: r.alpha,
    duoScaling: r.duoScaling,
    scales,
    errorBefore: r.errorBefore,
    errorAfterScale: r.errorAfterScale,
    errorAfter: r.errorAfter,
    clipped: r.clipped,
    secondsScaleSearch: r.secondsScaleSearch,
    secondsClipSearch: r.secondsClipSearch,
    layers: layers.map((layer, i) => {
      const clip = nativeLayers[i].groupClip;
      let sum = 0;
      for (let j = 0; j < clip.length; j++) sum += clip[j];
      return {
        ...result(args.config, nc, k, layer.n, allocs[i]),
        ...(layer.name ? { name: layer.name } : {}),
        groupClip: clip,
        meanClip: clip.length > 0 ? sum / clip.length : 1,
        errorBefore: r.layers[i].errorBefore,
        errorAfter: r.layers[i].errorAfter,
      };
    }),
  };
}

export interface GptqOptions {
  /** Relative dampening of diag(H) (default 0.01). */
  damp?: number;
  /** Visit inputs by descending H_kk (groups become static; default false). */
  actOrder?: boolean;
  /** Columns per lazy batch (default 128). */
  blockSize?: number;
  /**
   * MSE clip search per group: this many clip ratios from clipRatio down to clipMin * clipRatio, the
   * one with the least quantization error of the group's weights (as GPTQ holds them) kept. Default 1 (off).
   */
  clipGrid?: number;
  /** Smallest clip ratio of the search, in (0, 1] (default 0.5). */
  clipMin?: number;
  /** Weight each input row's squared error in the clip search by its Hessian diagonal (default false). */
  clipHWeighted?: boolean;
  /** AWQ's s[K] > 0: GPTQ of diag(s) W under diag(1/s) H diag(1/s); the outputs quantize diag(s) W. */
  inputScale?: Float32Array;
  /**
   * Precision of the factorization of H (default 'float64'); 'float32' halves its K x K working copy
   * (0.48 GB instead of 0.97 GB at K = 11008), as the reference GPTQ factors.
   */
  factorPrecision?: 'float64' | 'float32';
  name?: string;
}

export interface GptqResult extends QuantizedWeight {
  /** GPTQ's own loss: sum ||(w - q) / U_kk||^2 / 2. */
  proxyLoss: number;
  /** The relative dampening that made H positive definite (damp, or 10x, 100x, 1000x it). */
  dampUsed: number;
  /** Inputs whose H_kk was 0 (their weights became 0). */
  deadInputs: number;
}

/**
 * GPTQ of W[K][N] with the Hessian H = X^T X [K][K] (any positive scaling; e.g. CalibStats.hessian).
 * `cfg` is the weight config plus the GPTQ options. With grouping 'ic' each input row's group
 * parameters are computed when the row is reached (after earlier rows' errors were folded in).
 */
export async function gptqQuantize(w: Float32Array, k: number, n: number, hessian: Float64Array | Float32Array,
  cfg: WeightQuantConfig & GptqOptions): Promise<GptqResult> {
  expectInt('k', k, 1, 65536);
  expectInt('n', n, 1, MAX_DIM);
  const nc = nativeConfig(cfg);
  const options: GptqOptions = cfg;
  checkFloat32('w', w, k * n, `k=${k} x n=${n}`);
  expectTypedArray('hessian', hessian, ['Float64Array', 'Float32Array'], k * k, `k=${k} x k=${k}`);
  const damp = expectNumber('damp', options.damp ?? 0.01, { min: 0, max: 10, maxExclusive: true });
  const blockSize = expectInt('blockSize', options.blockSize ?? 128, 1, 65536);
  const actOrder = expectBoolean('actOrder', options.actOrder, false);
  const clipGrid = expectInt('clipGrid', options.clipGrid ?? 1, 1, 1000);
  const clipMin = expectNumber('clipMin', options.clipMin ?? 0.5, { min: 0, minExclusive: true, max: 1 });
  const clipHWeighted = expectBoolean('clipHWeighted', options.clipHWeighted, false);
  const inputScale = options.inputScale === undefined ? null : checkFloat32('inputScale', options.inputScale, k, `k=${k} (one positive scale per input channel)`);
  const factorPrecision = options.factorPrecision ?? 'float64';
  if (factorPrecision !== 'float64' && factorPrecision !== 'float32') {
    throw new TypeError(`Expected factorPrecision to be 'float64' or 'float32' but received ${describe(factorPrecision)}`);
  }
  const factorF32 = factorPrecision === 'float32';
  const a = allocate(k, n, nc);
  const b = native();
  const r = await call(`gptqQuantize${options.name ? ` (${options.name})` : ''}`, () =>
    b.gptqQuantize(w, k, n, hessian, nc, { damp, actOrder, blockSize, clipGrid, clipMin, clipHWeighted, factorF32 }, a.codes, a.scales, a.zeroPoints,
      a.dequantized, inputScale));
  return { ...result(cfg, nc, k, n, a), proxyLoss: r.proxyLoss, dampUsed: r.dampUsed, deadInputs: r.deadInputs };
}

/** Truncated SVD A[m][n] ~ U[m][rank] diag(S) Vt[rank][n] (randomized, deterministic for a seed). */
export async function truncatedSvd(a: Float64Array, m: number, n: number, rank: number,
  options: { powerIters?: number; oversample?: number; seed?: number } = {}): Promise<{ u: Float64Array; s: Float64Array; vt: Float64Array }> {
  expectInt('m', m, 1, MAX_DIM);
  expectInt('n', n, 1, MAX_DIM);
  expectInt('rank', rank, 1, Math.min(m, n));
  expectTypedArray('a', a, 'Float64Array', m * n, `m=${m} x n=${n}`);
  const o = expectOptions('options', options);
  const powerIters = expectInt('powerIters', o.powerIters ?? 2, 0, 100);
  const oversample = expectInt('oversample', o.oversample ?? 8, 0, 1 << 20);
  const seed = expectInt('seed', o.seed ?? 1, 0);
  const u = new Float64Array(m * rank);
  const s = new Float64Array(rank);
  const vt = new Float64Array(rank * n);
  const b = native();
  await call('truncatedSvd', () => b.truncatedSvd(a, m, n, rank, u, s, vt, powerIters, oversample, seed));
  return { u, s, vt };
}

// ---- error compensation ------------------------------------------------------------------

export type CompensateMethod = 'lorc' | 'lorc-aware' | 'kron-aware';
export const COMPENSATE_METHODS: readonly CompensateMethod[] = ['lorc', 'lorc-aware', 'kron-aware'];

export interface CompensateOptions {
  method: CompensateMethod;
  /** Low rank: the rank r. kron-aware: the number of Kronecker terms R. */
  rank: number;
  /** kron-aware: A_i is [k1][n1] (k1 divides K, n1 divides N); B_i is [K/k1][N/n1]. */
  k1?: number;
  n1?: number;
  /** Relative dampening of H (GPTQ's: damp * mean(diag H) added to the diagonal). Default 0.01. */
  damp?: number;
  /** kron-aware: ALS sweeps (default 30) and the relative gain below which it stops (default 1e-7). */
  maxIters?: number;
  tol?: number;
  /** Also return the objective after the start and after each ALS sweep. */
  history?: boolean;
  /** AWQ: wq quantizes diag(s) W and the layer reads x / s; the fit runs in that scaled space. */
  inputScale?: Float32Array;
  name?: string;
}

export interface Compensation {
  method: CompensateMethod;
  rank: number;
  /** Low rank: A [K][r], B [r][N] (C = A B). kron-aware: A [R][k1][n1], B [R][k2][n2] (C = sum A_i (x) B_i). Values are fp16. */
  a: Float32Array;
  b: Float32Array;
  /** Kronecker factor shapes (kron-aware only). */
  shapes?: { k1: number; n1: number; k2: number; n2: number };
  /** w_q + C [K][N]. */
  compensated: Float32Array;
  /** tr(D^T H D) / tr(E^T H E) with the damped H (identity for lorc), D = E - C with the stored factors. */
  weightedAfter: number;
  iterations: number;
  history?: Float64Array;
}

/**
 * Fits a correction C to E = w - wq [K][N] (compensate.h): 'lorc' the rank-r SVD of E, 'lorc-aware' the
 * exact minimiser of tr((E - C)^T H (E - C)) over rank r, 'kron-aware' a sum of Kronecker products under
 * the same norm by alternating least squares. hessian = X^T X [K][K] (fp64), needed by the aware fits.
 */
export async function compensateError(w: Float32Array, wq: Float32Array, k: number, n: number, hessian: Float64Array | Float32Array | undefined,
  options: CompensateOptions): Promise<Compensation> {
  expectInt('k', k, 1, 65536);
  expectInt('n', n, 1, MAX_DIM);
  checkFloat32('w', w, k * n, `k=${k} x n=${n}`);
  checkFloat32('wq', wq, k * n, `k=${k} x n=${n}`);
  const o = expectOptions('options', options);
  const method = expectOneOf('options.method', o.method, COMPENSATE_METHODS);
  const kron = method === 'kron-aware';
  let k1 = 0;
  let n1 = 0;
  let maxRank = Math.min(k, n);
  if (kron) {
    k1 = expectInt('options.k1', o.k1, 1, k);
    n1 = expectInt('options.n1', o.n1, 1, n);
    if (k % k1 !== 0) throw new RangeError(`Expected options.k1 to divide k=${k} but received ${k1}; pick a divisor of K`);
    if (n % n1 !== 0) throw new RangeError(`Expected options.n1 to divide n=${n} but received ${n1}; pick a divisor of N`);
    maxRank = Math.min(k1 * n1, (k / k1) * (n / n1));
  }
  const rank = expectInt('options.rank', o.rank, 1, maxRank);
  const damp = expectNumber('options.damp', o.damp ?? 0.01, { min: 0, max: 10, maxExclusive: true });
  const maxIters = expectInt('options.maxIters', o.maxIters ?? 30, 0, 10000);
  const tol = expectNumber('options.tol', o.tol ?? 1e-7, { min: 0, max: 1 });
  const wantHistory = expectBoolean('options.history', o.history, false);
  let h: Float64Array | Float32Array | null = null;
  if (method !== 'lorc') {
    if (hessian === undefined) throw new TypeError(`Expected a hessian (Float64Array, k*k) for ${method} but received undefined; calibrate first or use method 'lorc'`);
    h = expectTypedArray('hessian', hessian, ['Float64Array', 'Float32Array'], k * k, `k=${k} x k=${k}`);
  }
  const inputScale = o.inputScale === undefined ? null : checkFloat32('options.inputScale', o.inputScale, k, `k=${k}`);
  const k2 = kron ? k / k1 : 0;
  const n2 = kron ? n / n1 : 0;
  const a = new Float32Array(kron ? rank * k1 * n1 : k * rank);
  const b = new Float32Array(kron ? rank * k2 * n2 : rank * n);
  const compensated = new Float32Array(k * n);
  const history = wantHistory && kron ? new Float64Array(maxIters + 1).fill(NaN) : null;
  const code = COMPENSATE_METHODS.indexOf(method) as 0 | 1 | 2;
  const bnd = native();
  const r = await call(`compensateError${o.name ? ` (${String(o.name)})` : ''}`, () =>
    bnd.compensateError(w, wq, k, n, h, inputScale, { method: code, rank, k1, n1, damp, maxIters, tol }, a, b, compensated, history));
  const out: Compensation = { method, rank, a, b, compensated, weightedAfter: r.weightedAfter, iterations: r.iterations };
  if (kron) out.shapes = { k1, n1, k2, n2 };
  if (history) out.history = history.subarray(0, r.iterations + 1);
  return out;
}

/** The SIMD path of the native GEMM on this CPU: 'avx512', 'avx2' or 'generic'. */
export function gemmIsa(): string {
  return native().gemmIsa();
}
