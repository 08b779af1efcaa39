// Validated wrappers over the CUDA kernels (native/src/cuda, sm_90a: H100/H200). The kernels are in the
// addon only when it was built with nvcc, and run only where a Hopper GPU is present; everything is
// validated here first (TypeError / RangeError naming the argument), then the device is checked
// (W4A8Error saying why it cannot run). Each call copies host arrays in and out: for tests and tools,
// not for a serving loop.
import { W4A8Error } from '../util/errors';
import { native } from './binding';

/** What the CUDA side of this addon can do on this machine. */
export interface CudaStatus {
  compiled: boolean;
  devices: number;
  device?: string;
  computeCapability?: string;
  /** True when the kernels can run here (built with CUDA, a compute capability 9.x device present). */
  usable: boolean;
  /** Why not, when not usable. */
  reason?: string;
}

export function cudaStatus(): CudaStatus {
  const info = native().buildInfo;
  const status: CudaStatus = {
    compiled: info.cudaCompiled,
    devices: info.cudaDevices,
    usable: false,
    ...(info.cudaDevice ? { device: info.cudaDevice } : {}),
    ...(info.cudaComputeCapability ? { computeCapability: info.cudaComputeCapability } : {}),
  };
  if (!info.cudaCompiled) {
    status.reason = 'this build of the addon has no CUDA kernels (nvcc was not found when it was built)';
  } else if (info.cudaDevices === 0) {
    status.reason = 'no CUDA device on this machine (or no driver)';
  } else if (!info.cudaComputeCapability?.startsWith('9.')) {
    status.reason = `the kernels are built for sm_90a (H100/H200); device 0 is ${info.cudaDevice ?? '?'} (compute capability ${info.cudaComputeCapability ?? '?'})`;
  } else {
    status.usable = true;
  }
  return status;
}

type LinearFn = (kind: 0 | 1, format: 0 | 1, n: number, k: number, groupSize: number, codes: Uint8Array,
  scales: Float32Array, zeroPoints: Uint8Array | null, m: number, x: Float32Array, y: Float32Array) => Promise<void>;
type QuantFn = (m: number, k: number, x: Float32Array, qInt8: Int8Array | null, scalesInt8: Float32Array | null,
  qFp8: Uint8Array | null, scalesFp8: Float32Array | null) => Promise<void>;
type KronFn = (terms: number, aRows: number, aCols: number, bRows: number, bCols: number, a: Float32Array,
  b: Float32Array, m: number, x: Float32Array, y: Float32Array) => Promise<void>;

interface CudaNative {
  cudaLinear: LinearFn;
  cudaQuantizeActivations: QuantFn;
  cudaKroneckerAdd: KronFn;
}

function requireCuda(what: string): CudaNative {
  const status = cudaStatus();
  const b = native() as unknown as Partial<CudaNative>;
  if (!status.usable || typeof b.cudaLinear !== 'function') {
    throw new W4A8Error(`${what} needs the CUDA kernels: ${status.reason ?? 'the addon does not export them'}; use the CPU kernels instead`);
  }
  return b as CudaNative;
}

function checkInt(name: string, value: unknown, min: number, max = 2 ** 30): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`Expected an integer for ${name} but received ${String(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`Expected ${name} in [${min}, ${max}] but received ${value}`);
  return value;
}

function checkArray<T>(name: string, value: unknown, ctor: { new (n: number): T; name: string }, length: number): T {
  if (!(value instanceof (ctor as unknown as new (...a: unknown[]) => unknown))) {
    throw new TypeError(`Expected ${name} to be a ${ctor.name}`);
  }
  const len = (value as unknown as { length: number }).length;
  if (len !== length) throw new RangeError(`${name} holds ${len} values but the shape needs ${length}; pass the matching shape`);
  return value as T;
}

/** A weight in the canonical MatMulNBits layout (native/include/w4a8/formats.h). */
export interface CudaWeight {
  format: 'int4' | 'fp4';
  n: number;
  k: number;
  /** Power of two >= 16 (per-channel weights use K rounded up to a power of two). */
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  /** Asymmetric int4 only; absent = zero point 8. */
  zeroPoints?: Uint8Array;
  /** Only 'oc' (groups along K, the MatMulNBits layout) runs on the GPU. */
  grouping?: 'oc' | 'ic';
}

function checkWeight(w: CudaWeight): { format: 0 | 1; zeroPoints: Uint8Array | null } {
  if (w === null || typeof w !== 'object') throw new TypeError('Expected a weight object {format, n, k, groupSize, codes, scales}');
  if (w.format !== 'int4' && w.format !== 'fp4') throw new TypeError(`Expected weight.format 'int4' or 'fp4' but received ${String(w.format)}`);
  if (w.grouping !== undefined && w.grouping !== 'oc') {
    throw new RangeError(`weight.grouping is ${String(w.grouping)}; the CUDA kernels need 'oc' (groups along K, MatMulNBits layout)`);
  }
  const n = checkInt('weight.n', w.n, 1);
  const k = checkInt('weight.k', w.k, 1);
  const g = checkInt('weight.groupSize', w.groupSize, 16, 2 ** 20);
  if ((g & (g - 1)) !== 0) throw new RangeError(`Expected weight.groupSize to be a power of two but received ${g}`);
  const blocks = Math.ceil(k / g);
  checkArray('weight.codes', w.codes, Uint8Array, n * blocks * (g / 2));
  checkArray('weight.scales', w.scales, Float32Array, n * blocks);
  let zeroPoints: Uint8Array | null = null;
  if (w.zeroPoints !== undefined) {
    if (w.format === 'fp4') throw new RangeError('weight.zeroPoints given for an fp4 weight; fp4 is symmetric, drop them');
    zeroPoints = checkArray('weight.zeroPoints', w.zeroPoints, Uint8Array, n * Math.ceil(blocks / 2));
  }
  return { format: w.format === 'int4' ? 0 : 1, zeroPoints };
}

/** Largest token count of the W4A16 decode kernel. */
export const W4A16_MAX_TOKENS = 8;

/**
 * y [m][n] = x [m][k] times the weight on the GPU: 'w4a8' quantizes x per token to int8 and runs the
 * tensor-core GEMM; 'w4a16' (m <= 8) runs the dequantizing GEMV on x as given (fp32 here).
 */
export async function cudaLinear(kernel: 'w4a8' | 'w4a16', weight: CudaWeight, x: Float32Array, m: number): Promise<Float32Array> {
  if (kernel !== 'w4a8' && kernel !== 'w4a16') throw new TypeError(`Expected kernel 'w4a8' or 'w4a16' but received ${String(kernel)}`);
  const w = checkWeight(weight);
  checkInt('m', m, 1, kernel === 'w4a16' ? W4A16_MAX_TOKENS : 2 ** 30);
  checkArray('x', x, Float32Array, m * weight.k);
  const b = requireCuda(`cudaLinear(${kernel})`);
  const y = new Float32Array(m * weight.n);
  await b.cudaLinear(kernel === 'w4a8' ? 0 : 1, w.format, weight.n, weight.k, weight.groupSize, weight.codes, weight.scales,
    w.zeroPoints, m, x, y);
  return y;
}

export interface CudaQuantizedActivations {
  int8?: { q: Int8Array; scales: Float32Array };
  fp8?: { q: Uint8Array; scales: Float32Array };
}

/** Per-token quantization of x [m][k] on the GPU: int8 (scale amax/127) and/or FP8 E4M3 bytes (amax/448). */
export async function cudaQuantizeActivations(x: Float32Array, m: number, k: number,
  formats: { int8?: boolean; fp8?: boolean } = { int8: true }): Promise<CudaQuantizedActivations> {
  checkInt('m', m, 1);
  checkInt('k', k, 1);
  checkArray('x', x, Float32Array, m * k);
  if (!formats || (!formats.int8 && !formats.fp8)) throw new RangeError('Expected formats.int8 or formats.fp8 to be true');
  const b = requireCuda('cudaQuantizeActivations');
  const out: CudaQuantizedActivations = {};
  if (formats.int8) out.int8 = { q: new Int8Array(m * k), scales: new Float32Array(m) };
  if (formats.fp8) out.fp8 = { q: new Uint8Array(m * k), scales: new Float32Array(m) };
  await b.cudaQuantizeActivations(m, k, x, out.int8?.q ?? null, out.int8?.scales ?? null, out.fp8?.q ?? null, out.fp8?.scales ?? null);
  return out;
}

/** Kronecker adapter terms (convention of native/include/w4a8/cpu_adapters.h). */
export interface CudaKronTerms {
  terms: number;
  aRows: number;
  aCols: number;
  bRows: number;
  bCols: number;
  /** [terms][aRows][aCols] */
  a: Float32Array;
  /** [terms][bRows][bCols] */
  b: Float32Array;
}

/** Shared-memory bound of the kernel: terms * aCols * bRows intermediates. */
export const KRON_MAX_INNER = 12288;

/** y [m][aRows*bRows] += sum_i (A_i kron B_i) x [m][aCols*bCols], on the GPU; y is updated in place. */
export async function cudaKroneckerAdd(kt: CudaKronTerms, x: Float32Array, m: number, y: Float32Array): Promise<void> {
  if (kt === null || typeof kt !== 'object') throw new TypeError('Expected Kronecker terms {terms, aRows, aCols, bRows, bCols, a, b}');
  const terms = checkInt('terms', kt.terms, 1);
  const ar = checkInt('aRows', kt.aRows, 1, 2 ** 15);
  const ac = checkInt('aCols', kt.aCols, 1, 2 ** 15);
  const br = checkInt('bRows', kt.bRows, 1, 2 ** 15);
  const bc = checkInt('bCols', kt.bCols, 1, 2 ** 15);
  if (terms * ac * br > KRON_MAX_INNER) {
    throw new RangeError(`terms * aCols * bRows = ${terms * ac * br} exceeds ${KRON_MAX_INNER} (the GPU kernel's shared memory); use fewer terms or the CPU kernel`);
  }
  checkArray('a', kt.a, Float32Array, terms * ar * ac);
  checkArray('b', kt.b, Float32Array, terms * br * bc);
  checkInt('m', m, 1);
  checkArray('x', x, Float32Array, m * ac * bc);
  checkArray('y', y, Float32Array, m * ar * br);
  const b = requireCuda('cudaKroneckerAdd');
  await b.cudaKroneckerAdd(terms, ar, ac, br, bc, kt.a, kt.b, m, x, y);
}
