// Validated wrappers over the native layout helpers the importers need: checkpoints store a
// linear layer as [out, in] (y = W x) while an ONNX MatMul initializer is [in, out] (y = x W).
import { native } from './binding';

function checkDim(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new TypeError(`Expected an integer for ${name} but received ${String(value)}`);
  if (value < min) throw new RangeError(`Expected ${name} >= ${min} but received ${value}`);
  return value;
}

/** A row-major [rows, cols] fp32 matrix transposed to a new [cols, rows] one (off the main thread). */
export async function transposeMatrix(src: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  if (!(src instanceof Float32Array)) throw new TypeError('Expected src to be a Float32Array');
  checkDim('rows', rows, 0);
  checkDim('cols', cols, 0);
  if (src.length !== rows * cols) throw new RangeError(`src holds ${src.length} values, not rows * cols = ${rows} * ${cols}`);
  const dst = new Float32Array(src.length);
  if (src.length > 0) await native().transposeF32(src, rows, cols, dst);
  return dst;
}

export interface RopeTables {
  /** [seqLen, headSize / 2], row-major. */
  cos: Float32Array;
  sin: Float32Array;
}

/** RoPE tables as llama2.c's run.c computes them (fp32 powf / cosf / sinf), see tensor_ops.h. */
export async function ropeTables(seqLen: number, headSize: number, theta = 10000): Promise<RopeTables> {
  checkDim('seqLen', seqLen, 1);
  checkDim('headSize', headSize, 2);
  if (headSize % 2 !== 0) throw new RangeError(`Expected an even headSize for rotary pairs but received ${headSize}`);
  if (typeof theta !== 'number' || !(theta > 0) || !Number.isFinite(theta)) throw new RangeError(`Expected a positive finite theta but received ${theta}`);
  const cos = new Float32Array(seqLen * (headSize / 2));
  const sin = new Float32Array(cos.length);
  await native().ropeTablesF32(seqLen, headSize, theta, cos, sin);
  return { cos, sin };
}
