// ONNX element types: names and storage widths. Sub-byte types (int4, uint4, float4, int2)
// are packed along the flattened tensor, so sizes are counted in bits, then rounded up.
import { TensorProto_DataType as DataType } from 'onnx-buf';

export { DataType };

const BITS: Partial<Record<DataType, number>> = {
  [DataType.FLOAT]: 32,
  [DataType.UINT8]: 8,
  [DataType.INT8]: 8,
  [DataType.UINT16]: 16,
  [DataType.INT16]: 16,
  [DataType.INT32]: 32,
  [DataType.INT64]: 64,
  [DataType.BOOL]: 8,
  [DataType.FLOAT16]: 16,
  [DataType.DOUBLE]: 64,
  [DataType.UINT32]: 32,
  [DataType.UINT64]: 64,
  [DataType.COMPLEX64]: 64,
  [DataType.COMPLEX128]: 128,
  [DataType.BFLOAT16]: 16,
  [DataType.FLOAT8E4M3FN]: 8,
  [DataType.FLOAT8E4M3FNUZ]: 8,
  [DataType.FLOAT8E5M2]: 8,
  [DataType.FLOAT8E5M2FNUZ]: 8,
  [DataType.UINT4]: 4,
  [DataType.INT4]: 4,
  [DataType.FLOAT4E2M1]: 4,
  [DataType.FLOAT8E8M0]: 8,
  [DataType.UINT2]: 2,
  [DataType.INT2]: 2,
};

/** The ONNX name of an element type ("FLOAT16"), or "TYPE_<n>" for a value this schema lacks. */
export function dataTypeName(t: number): string {
  return DataType[t] ?? `TYPE_${t}`;
}

/** Bits per element, or undefined for STRING / UNDEFINED / unknown types. */
export function bitsPerElement(t: number): number | undefined {
  return BITS[t as DataType];
}

/** Bytes that `count` packed elements of type `t` occupy in raw_data. */
export function byteSizeOf(t: number, count: number): number | undefined {
  const bits = bitsPerElement(t);
  return bits === undefined ? undefined : Math.ceil((count * bits) / 8);
}

export function isFloatType(t: number): boolean {
  return t === DataType.FLOAT || t === DataType.FLOAT16 || t === DataType.BFLOAT16 || t === DataType.DOUBLE;
}
