// Random canonical 4-bit weights (MatMulNBits layout, formats.h) for benchmarks: seeded and filled
// natively, so the same matrix can be handed to our kernels and to ONNX Runtime.
import { canonicalBytes as formatBytes, codeBytes, scaleCount, zeroPointBytes, type CanonicalWeight } from '../native/formats';
import { fillRandom, type CpuWeightFormat } from '../native/kernels';

export interface WeightSpec {
  format: CpuWeightFormat;
  groupSize: number;
  /** int4 only: with packed zero points (asymmetric). */
  asymmetric: boolean;
}

/** Bytes one matrix occupies in the canonical layout (what a kernel must stream at M=1). */
export function canonicalBytes(spec: WeightSpec, n: number, k: number): number {
  return formatBytes(n, k, spec.groupSize, spec.asymmetric);
}

/**
 * A weight with uniform random codes, scales in [0.002, 0.02) and random zero points: the value
 * distribution does not matter for timing, and the error report compares against its exact product.
 */
export function randomCanonicalWeight(spec: WeightSpec, n: number, k: number, seed: number): CanonicalWeight {
  const codes = new Uint8Array(codeBytes(n, k, spec.groupSize));
  fillRandom(codes, seed, 0, 255);
  const scales = new Float32Array(scaleCount(n, k, spec.groupSize));
  fillRandom(scales, seed + 1, 0.002, 0.02);
  const w: CanonicalWeight = { format: spec.format, n, k, groupSize: spec.groupSize, codes, scales };
  if (spec.format === 'int4' && spec.asymmetric) {
    w.zeroPoints = new Uint8Array(zeroPointBytes(n, k, spec.groupSize));
    fillRandom(w.zeroPoints, seed + 2, 0, 255);
  }
  return w;
}
