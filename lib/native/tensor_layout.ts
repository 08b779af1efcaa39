// Validated wrappers over the native layout helpers the importers need: checkpoints store a
// linear layer as [out, in] (y = W x) while an ONNX MatMul initializer is [in, out] (y = x W).
import { native } from './binding';
import { callNative } from './status';
import { expectInt, expectNumber, expectTypedArray } from './validate';

/** Largest dimension the layout glue takes. */
const MAX_DIM = 2 ** 30;

/** A row-major [rows, cols] fp32 matrix transposed to a new [cols, rows] one (off the main thread). */
export async function transposeMatrix(src: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  expectInt('rows', rows, 0, MAX_DIM);
  expectInt('cols', cols, 0, MAX_DIM);
  expectTypedArray('src', src, 'Float32Array', rows * cols, `rows=${rows} x cols=${cols}`);
  const dst = new Float32Array(src.length);
  if (src.length > 0) await callNative('transposeMatrix', () => native().transposeF32(src, rows, cols, dst));
  return dst;
}

export interface RopeTables {
  /** [seqLen, headSize / 2], row-major. */
  cos: Float32Array;
  sin: Float32Array;
}

/** RoPE tables as llama2.c's run.c computes them (fp32 powf / cosf / sinf), see tensor_ops.h. */
export async function ropeTables(seqLen: number, headSize: number, theta = 10000): Promise<RopeTables> {
  expectInt('seqLen', seqLen, 1, MAX_DIM);
  expectInt('headSize', headSize, 2, MAX_DIM);
  if (headSize % 2 !== 0) throw new RangeError(`Expected an even headSize for rotary pairs but received ${headSize}`);
  expectNumber('theta', theta, { min: 0, minExclusive: true });
  const cos = new Float32Array(seqLen * (headSize / 2));
  const sin = new Float32Array(cos.length);
  await callNative('ropeTables', () => native().ropeTablesF32(seqLen, headSize, theta, cos, sin));
  return { cos, sin };
}
