// Validated wrappers over the native layout helpers the importers need: checkpoints store a
// linear layer as [out, in] (y = W x) while an ONNX MatMul initializer is [in, out] (y = x W).
import { native } from './binding';
import { callNative } from './status';
import { expectBoolean, expectInt, expectNumber, expectTypedArray } from './validate';

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

/**
 * The int4 codes `packed`, a [rows][packedCols] byte matrix of [rows][2 * packedCols] 4-bit values
 * (low nibble first: the quantizer's canonical [N][blocks][group/2] with rows = N), with the first
 * `validCols` columns transposed to [validCols][rows] and packed along the flattened result as an
 * ONNX INT4/UINT4 initializer stores it (element j in byte j / 2, low nibble for even j; an odd
 * count pads the last high nibble with 0). `flipSign` turns offset-8 codes into two's complement
 * INT4 (q XOR 8). Runs natively off the main thread (native/src/tensor/nibble_transpose.cpp).
 */
export async function transposeNibbles(packed: Uint8Array, rows: number, packedCols: number, validCols: number, flipSign = false): Promise<Uint8Array> {
  expectInt('rows', rows, 0, MAX_DIM);
  expectInt('packedCols', packedCols, 0, MAX_DIM);
  expectInt('validCols', validCols, 0, 2 * packedCols);
  expectTypedArray('packed', packed, 'Uint8Array', rows * packedCols, `rows=${rows} x packedCols=${packedCols}`);
  const flip = expectBoolean('flipSign', flipSign, false);
  const out = new Uint8Array(Math.ceil((rows * validCols) / 2));
  if (out.length > 0) await callNative('transposeNibbles', () => native().transposeNibbles(packed, rows, packedCols, validCols, flip, out));
  return out;
}

/** a / b element-wise in fp32 (correctly rounded, as ONNX Div), natively off the main thread. */
export async function divideVectors(a: Float32Array, b: Float32Array): Promise<Float32Array> {
  expectTypedArray('a', a, 'Float32Array');
  expectTypedArray('b', b, 'Float32Array', a.length, `a.length=${a.length}`);
  const out = new Float32Array(a.length);
  if (out.length > 0) await callNative('divideVectors', () => native().divideF32(a, b, out));
  return out;
}

/** 1 / a element-wise in fp32 (correctly rounded, as ONNX Reciprocal), natively off the main thread. */
export async function reciprocal(a: Float32Array): Promise<Float32Array> {
  expectTypedArray('a', a, 'Float32Array');
  const out = new Float32Array(a.length);
  if (out.length > 0) await callNative('reciprocal', () => native().reciprocalF32(a, out));
  return out;
}

/**
 * alpha * left [rows][rank] @ right [rank][cols] as a new [rows][cols] matrix, or its transpose
 * [cols][rows] with `transpose` (a PEFT LoKr factor given as w1_a @ w1_b, multiplied out for the
 * fused W4A8MatMul). Natively (blocked fp32 GEMM) off the main thread.
 */
export async function matrixProduct(left: Float32Array, right: Float32Array, rows: number, rank: number, cols: number,
  options: { alpha?: number; transpose?: boolean } = {}): Promise<Float32Array> {
  expectInt('rows', rows, 1, MAX_DIM);
  expectInt('rank', rank, 1, MAX_DIM);
  expectInt('cols', cols, 1, MAX_DIM);
  expectTypedArray('left', left, 'Float32Array', rows * rank, `rows=${rows} x rank=${rank}`);
  expectTypedArray('right', right, 'Float32Array', rank * cols, `rank=${rank} x cols=${cols}`);
  const alpha = expectNumber('alpha', options.alpha ?? 1);
  const transpose = expectBoolean('transpose', options.transpose, false);
  const out = new Float32Array(rows * cols);
  await callNative('matrixProduct', () => native().matrixProductF32(left, right, rows, rank, cols, alpha, transpose, out));
  return out;
}
