// Loads the N-API addon and types it. Every kernel module adds its functions to
// NativeBinding; callers go through the validating wrappers beside this file, never raw.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BuildInfo {
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaDevice?: string;
  cudaComputeCapability?: string;
  napiVersion: number;
}

export interface NativeBinding {
  buildInfo: BuildInfo;
  float16ToFloat32(src: Uint16Array, dst: Float32Array): void;
  bfloat16ToFloat32(src: Uint16Array, dst: Float32Array): void;
  float32ToFloat16(src: Float32Array, dst: Uint16Array): void;
  float32ToBfloat16(src: Float32Array, dst: Uint16Array): void;
  countNonFinite(src: Float32Array): number;
  // eval_ops (type code 0 = Float32Array logits, 1 = Uint16Array fp16 bits); see lib/native/eval_ops.ts.
  tokenNll(logits: Float32Array | Uint16Array, type: 0 | 1, rows: number, vocab: number, targets: Int32Array, out: Float64Array): number;
  tokenNllAsync(logits: Float32Array | Uint16Array, type: 0 | 1, rows: number, vocab: number, targets: Int32Array, out: Float64Array): Promise<number>;
  rowArgmax(logits: Float32Array | Uint16Array, type: 0 | 1, row: number, vocab: number): number;
  // tensor_layout: [rows, cols] -> [cols, rows] fp32 on the libuv pool; rope tables as llama2.c computes them; see lib/native/tensor_layout.ts.
  transposeF32(src: Float32Array, rows: number, cols: number, dst: Float32Array): Promise<void>;
  ropeTablesF32(seqLen: number, headSize: number, theta: number, cos: Float32Array, sin: Float32Array): Promise<void>;
  // cuda_kernels (builds with CUDA only, hence optional; Promises reject without a device); see lib/native/cuda.ts.
  cudaLinear?(kind: 0 | 1, format: 0 | 1, n: number, k: number, groupSize: number, codes: Uint8Array, scales: Float32Array,
    zeroPoints: Uint8Array | null, m: number, x: Float32Array, y: Float32Array): Promise<void>;
  cudaQuantizeActivations?(m: number, k: number, x: Float32Array, qInt8: Int8Array | null, scalesInt8: Float32Array | null,
    qFp8: Uint8Array | null, scalesFp8: Float32Array | null): Promise<void>;
  cudaKroneckerAdd?(terms: number, aRows: number, aCols: number, bRows: number, bCols: number, a: Float32Array,
    b: Float32Array, m: number, x: Float32Array, y: Float32Array): Promise<void>;
  // cpu_kernels: ISA queries, CpuPackedWeight, W4A8/W4A16/Kronecker calls; typed in full as CpuKernelBinding in lib/native/kernels.ts.
  cpuIsas?(): string[];
  cpuDefaultIsa?(): string;
  // Modules add their members here as they land (kernels, quantizers, statistics, eval).
  [name: string]: unknown;
}

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
  cached = require(found) as NativeBinding;
  return cached;
}
