// Validated wrappers over the CUDA kernels (native/src/cuda, sm_90a: H100/H200). The kernels are in the
// addon only when it was built with nvcc, and run only where a Hopper GPU is present; everything is
// validated here first (TypeError / RangeError naming the argument), then the device is checked
// (W4A8Error saying why it cannot run). Each call copies host arrays in and out: for tests and tools,
// not for a serving loop.
import { W4A8Error } from '../util/errors';
import { native, type NativeBinding } from './binding';
import { checkCanonicalWeight, type CanonicalWeight } from './formats';
import { callNative } from './status';
import { expectInt, expectObject, expectOneOf, expectTypedArray } from './validate';

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

type CudaKernels = Required<Pick<NativeBinding, 'cudaLinear' | 'cudaQuantizeActivations' | 'cudaKroneckerAdd'>>;

function requireCuda(what: string): CudaKernels {
  const status = cudaStatus();
  const b = native();
  if (!status.usable || !b.cudaLinear || !b.cudaQuantizeActivations || !b.cudaKroneckerAdd) {
    throw new W4A8Error(`${what} needs the CUDA kernels: ${status.reason ?? 'the addon does not export them'}; use the CPU kernels instead`);
  }
  return b as CudaKernels;
}

/** Largest dimension the CUDA glue takes. */
const MAX_DIM = 2 ** 30;

/** A weight in the canonical MatMulNBits layout (formats.ts); per-channel weights may be one block of K rounded up. */
export interface CudaWeight extends CanonicalWeight {
  /** Only 'oc' (groups along K, the MatMulNBits layout) runs on the GPU. */
  grouping?: 'oc' | 'ic';
}

function checkWeight(w: CudaWeight) {
  expectObject('weight', w, '{ format, n, k, groupSize, codes, scales }');
  if (w.grouping !== undefined) expectOneOf('weight.grouping', w.grouping, ['oc'] as const);
  return checkCanonicalWeight(w, { prefix: 'weight.', maxDim: MAX_DIM, singleBlock: true });
}

/** Largest token count of the W4A16 decode kernel. */
export const W4A16_MAX_TOKENS = 8;

/**
 * y [m][n] = x [m][k] times the weight on the GPU: 'w4a8' quantizes x per token to int8 and runs the
 * tensor-core GEMM; 'w4a16' (m <= 8) runs the dequantizing GEMV on x as given (fp32 here).
 */
export async function cudaLinear(kernel: 'w4a8' | 'w4a16', weight: CudaWeight, x: Float32Array, m: number): Promise<Float32Array> {
  expectOneOf('kernel', kernel, ['w4a8', 'w4a16'] as const);
  const w = checkWeight(weight);
  expectInt('m', m, 1, kernel === 'w4a16' ? W4A16_MAX_TOKENS : MAX_DIM);
  expectTypedArray('x', x, 'Float32Array', m * w.k, `m=${m} x k=${w.k}`);
  const b = requireCuda(`cudaLinear(${kernel})`);
  const y = new Float32Array(m * w.n);
  await callNative(`cudaLinear(${kernel})`, () =>
    b.cudaLinear(kernel === 'w4a8' ? 0 : 1, w.formatCode, w.n, w.k, w.groupSize, w.codes, w.scales, w.zeroPoints, m, x, y));
  return y;
}

export interface CudaQuantizedActivations {
  int8?: { q: Int8Array; scales: Float32Array };
  fp8?: { q: Uint8Array; scales: Float32Array };
}

/** Per-token quantization of x [m][k] on the GPU: int8 (scale amax/127) and/or FP8 E4M3 bytes (amax/448). */
export async function cudaQuantizeActivations(x: Float32Array, m: number, k: number,
  formats: { int8?: boolean; fp8?: boolean } = { int8: true }): Promise<CudaQuantizedActivations> {
  expectInt('m', m, 1, MAX_DIM);
  expectInt('k', k, 1, MAX_DIM);
  expectTypedArray('x', x, 'Float32Array', m * k, `m=${m} x k=${k}`);
  const f = expectObject('formats', formats, '{ int8?, fp8? }');
  if (f.int8 !== true && f.fp8 !== true) throw new RangeError('Expected formats.int8 or formats.fp8 to be true but received neither; ask for at least one format');
  const b = requireCuda('cudaQuantizeActivations');
  const out: CudaQuantizedActivations = {};
  if (formats.int8) out.int8 = { q: new Int8Array(m * k), scales: new Float32Array(m) };
  if (formats.fp8) out.fp8 = { q: new Uint8Array(m * k), scales: new Float32Array(m) };
  await callNative('cudaQuantizeActivations', () =>
    b.cudaQuantizeActivations(m, k, x, out.int8?.q ?? null, out.int8?.scales ?? null, out.fp8?.q ?? null, out.fp8?.scales ?? null));
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
  expectObject('kron', kt, '{ terms, aRows, aCols, bRows, bCols, a, b }');
  const terms = expectInt('terms', kt.terms, 1, MAX_DIM);
  const ar = expectInt('aRows', kt.aRows, 1, 2 ** 15);
  const ac = expectInt('aCols', kt.aCols, 1, 2 ** 15);
  const br = expectInt('bRows', kt.bRows, 1, 2 ** 15);
  const bc = expectInt('bCols', kt.bCols, 1, 2 ** 15);
  if (terms * ac * br > KRON_MAX_INNER) {
    throw new RangeError(`terms * aCols * bRows = ${terms * ac * br} exceeds ${KRON_MAX_INNER} (the GPU kernel's shared memory); use fewer terms or the CPU kernel`);
  }
  expectTypedArray('a', kt.a, 'Float32Array', terms * ar * ac, `terms=${terms} x aRows=${ar} x aCols=${ac}`);
  expectTypedArray('b', kt.b, 'Float32Array', terms * br * bc, `terms=${terms} x bRows=${br} x bCols=${bc}`);
  expectInt('m', m, 1, MAX_DIM);
  expectTypedArray('x', x, 'Float32Array', m * ac * bc, `m=${m} x aCols*bCols=${ac * bc}`);
  expectTypedArray('y', y, 'Float32Array', m * ar * br, `m=${m} x aRows*bRows=${ar * br}`);
  const b = requireCuda('cudaKroneckerAdd');
  await callNative('cudaKroneckerAdd', () => b.cudaKroneckerAdd(terms, ar, ac, br, bc, kt.a, kt.b, m, x, y));
}
