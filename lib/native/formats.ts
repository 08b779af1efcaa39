// The canonical quantized weight of native/include/w4a8/formats.h, for TypeScript: the one place
// that states which group sizes exist, how a weight's arrays are shaped and how many bytes they hold.
// The quantizer produces this layout, MatMulNBits stores it as is, the CPU and CUDA kernels prepack
// from it, and the native container keeps it; every TypeScript check of a group size or a weight's
// shape comes from here.
//
//   codes       uint8 [n][blocks][groupSize / 2]   two 4-bit codes per byte, low nibble first
//   scales      float [n][blocks]
//   zeroPoints  uint8 [n][ceil(blocks / 2)]        int4 asymmetric only (low nibble = even block);
//                                                  absent: every zero point is 8
//   blocks = ceil(k / groupSize); codes past k are padding.
import { describe, expectInt, expectOneOf, expectTypedArray } from './validate';

export type WeightFormat = 'int4' | 'fp4';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['int4', 'fp4'];

/** formats.h WeightFormat: the number the addon takes for a format. */
export function weightFormatCode(format: WeightFormat): 0 | 1 {
  return format === 'fp4' ? 1 : 0;
}

/** formats.h kMinGroupSize / kMaxGroupSize. */
export const MIN_GROUP_SIZE = 16;
export const MAX_GROUP_SIZE = 256;
/**
 * The group (block) sizes of the canonical layout: powers of two from 16 to 256. Every kernel,
 * ONNX Runtime's MatMulNBits and blocked DequantizeLinear take each of them.
 */
export const GROUP_SIZES: readonly number[] = [16, 32, 64, 128, 256];
/** A configuration's group size meaning one scale per output channel. */
export const PER_CHANNEL = 0;
/**
 * The block size per-channel weights are stored with, each block repeating the channel's scale
 * (quant.h per_channel_block): a legal group size whatever K is, so per-channel weights export to
 * every format. A single block of K would be wrong in ONNX Runtime's CPU MatMulNBits above 256.
 */
export const PER_CHANNEL_BLOCK_SIZE = 128;
/** The zero point of symmetric int4 weights (no zeroPoints array). */
export const INT4_DEFAULT_ZERO_POINT = 8;

/** True for a group size of the canonical layout (16..256, a power of two). */
export function isGroupSize(groupSize: unknown): groupSize is number {
  return typeof groupSize === 'number' && GROUP_SIZES.includes(groupSize);
}

/** True for any power of two >= 16: a group size, or the single block of K of a per-channel weight. */
export function isBlockSize(blockSize: unknown): blockSize is number {
  return typeof blockSize === 'number' && Number.isInteger(blockSize) && blockSize >= MIN_GROUP_SIZE && (blockSize & (blockSize - 1)) === 0;
}

/**
 * The block size of the canonical layout for a configuration (quant.h LayoutGroupSize): the group
 * size, or for per-channel weights perChannelBlockSize, or when that is 0 one block of K rounded up
 * to a power of two.
 */
export function layoutGroupSize(groupSize: number, k: number, perChannelBlockSize = PER_CHANNEL_BLOCK_SIZE): number {
  if (groupSize !== PER_CHANNEL) return groupSize;
  if (perChannelBlockSize !== 0) return perChannelBlockSize;
  let block = MIN_GROUP_SIZE;
  while (block < k) block *= 2;
  return block;
}

export function blocksPerRow(k: number, groupSize: number): number {
  return Math.ceil(k / groupSize);
}
export function codeBytes(n: number, k: number, groupSize: number): number {
  return n * blocksPerRow(k, groupSize) * (groupSize / 2);
}
export function scaleCount(n: number, k: number, groupSize: number): number {
  return n * blocksPerRow(k, groupSize);
}
export function zeroPointBytes(n: number, k: number, groupSize: number): number {
  return n * Math.ceil(blocksPerRow(k, groupSize) / 2);
}
/** Bytes of the whole weight with fp32 scales (what a kernel streams at one token). */
export function canonicalBytes(n: number, k: number, groupSize: number, withZeroPoints: boolean): number {
  return codeBytes(n, k, groupSize) + 4 * scaleCount(n, k, groupSize) + (withZeroPoints ? zeroPointBytes(n, k, groupSize) : 0);
}

/** One weight in the canonical layout. */
export interface CanonicalWeight {
  format: WeightFormat;
  /** Output channels. */
  n: number;
  /** Input channels. */
  k: number;
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  /** int4 asymmetric only; absent means every zero point is 8. */
  zeroPoints?: Uint8Array;
}

/** A canonical weight after checkCanonicalWeight, with the addon's format code. */
export interface CheckedWeight {
  format: WeightFormat;
  formatCode: 0 | 1;
  n: number;
  k: number;
  groupSize: number;
  codes: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array | null;
}

export interface CanonicalCheck {
  /** Prefix of field names in messages ('weight.' gives "Expected weight.codes of length ..."). */
  prefix?: string;
  /** Largest n and k the consumer takes. */
  maxDim: number;
  /** Also accept one block of K rounded up to a power of two (per-channel with perChannelBlockSize 0). */
  singleBlock?: boolean;
}

/** Checks every field of a canonical weight: format, dimensions, group size and array lengths. */
export function checkCanonicalWeight(w: unknown, check: CanonicalCheck): CheckedWeight {
  const p = check.prefix ?? '';
  if (w === null || typeof w !== 'object') {
    throw new TypeError(`Expected ${p ? p.slice(0, -1) : 'a weight'} to be an object { format, n, k, groupSize, codes, scales } but received ${describe(w)}`);
  }
  const o = w as Record<string, unknown>;
  const format = expectOneOf(`${p}format`, o.format, WEIGHT_FORMATS);
  const n = expectInt(`${p}n`, o.n, 1, check.maxDim);
  const k = expectInt(`${p}k`, o.k, 1, check.maxDim);
  const groupSize = expectInt(`${p}groupSize`, o.groupSize, 1, 2 ** 30);
  if (check.singleBlock ? !isBlockSize(groupSize) : !isGroupSize(groupSize)) {
    throw new RangeError(check.singleBlock
      ? `Expected ${p}groupSize to be a power of two >= ${MIN_GROUP_SIZE} but received ${groupSize}`
      : `Expected ${p}groupSize in ${GROUP_SIZES.join(', ')} but received ${groupSize}`);
  }
  const blocks = blocksPerRow(k, groupSize);
  const codes = expectTypedArray(`${p}codes`, o.codes, 'Uint8Array', codeBytes(n, k, groupSize),
    `n=${n} x ${blocks} blocks x ${groupSize / 2} bytes`);
  const scales = expectTypedArray(`${p}scales`, o.scales, 'Float32Array', scaleCount(n, k, groupSize), `n=${n} x ${blocks} blocks`);
  let zeroPoints: Uint8Array | null = null;
  if (o.zeroPoints !== undefined && o.zeroPoints !== null) {
    if (format === 'fp4') {
      throw new RangeError(`Expected no ${p}zeroPoints for an fp4 weight (fp4 is symmetric) but received ${describe(o.zeroPoints)}; drop ${p}zeroPoints`);
    }
    zeroPoints = expectTypedArray(`${p}zeroPoints`, o.zeroPoints, 'Uint8Array', zeroPointBytes(n, k, groupSize),
      `n=${n} x ${Math.ceil(blocks / 2)} bytes for ${blocks} blocks`);
  }
  return { format, formatCode: weightFormatCode(format), n, k, groupSize, codes, scales, zeroPoints };
}
