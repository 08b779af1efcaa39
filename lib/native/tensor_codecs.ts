// Validated wrappers over the native element codecs (native/addon/tensor_codecs_bindings.cpp):
// fp16 / bf16 bit patterns <-> fp32 (round to nearest even, as ONNX casts do) and a NaN/Inf count.
// They run inline: each is one pass over memory, far cheaper than a trip to the libuv pool.
import { native } from './binding';
import { expectOneOf, expectTypedArray } from './validate';

/** The 16-bit float types whose bit patterns travel in a Uint16Array. */
export type HalfType = 'float16' | 'bfloat16';
const HALF_TYPES: readonly HalfType[] = ['float16', 'bfloat16'];

/** fp16 or bf16 bit patterns widened to a new Float32Array (exact). */
export function halvesToFloat32(halves: Uint16Array, type: HalfType): Float32Array<ArrayBuffer> {
  expectTypedArray('halves', halves, 'Uint16Array');
  const out = new Float32Array(halves.length);
  if (expectOneOf('type', type, HALF_TYPES) === 'float16') native().float16ToFloat32(halves, out);
  else native().bfloat16ToFloat32(halves, out);
  return out;
}

/** fp32 values narrowed to fp16 or bf16 bit patterns in a new Uint16Array (round to nearest even). */
export function float32ToHalves(values: Float32Array, type: HalfType): Uint16Array<ArrayBuffer> {
  expectTypedArray('values', values, 'Float32Array');
  const out = new Uint16Array(values.length);
  if (expectOneOf('type', type, HALF_TYPES) === 'float16') native().float32ToFloat16(values, out);
  else native().float32ToBfloat16(values, out);
  return out;
}

/** How many of `values` are NaN or +-Infinity. */
export function countNonFinite(values: Float32Array): number {
  return native().countNonFinite(expectTypedArray('values', values, 'Float32Array'));
}
