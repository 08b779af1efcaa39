// Tensor data access: raw bytes whether inline or external, float views of fp32/fp16/bf16/double
// weights, and constructors. Element conversion runs in the native addon, never in a JS loop.
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { float32ToHalves, halvesToFloat32 } from '../native/tensor_codecs';
import { DataType, byteSizeOf, dataTypeName } from './dtype';
import { isExternal, readExternalBytes } from './external_data';

/** Where a tensor's external data lives: the folder its locations are relative to (an OnnxModel is one). */
export interface TensorSource {
  dir: string;
}

export { DataType };
export type OnnxDataType = DataType;

/** The tensor's dims as numbers (all ONNX dims fit; a negative or huge one is refused). */
export function tensorDims(t: TensorProto): number[] {
  return t.dims.map((d) => {
    const n = Number(d);
    if (d < 0n || !Number.isSafeInteger(n)) throw new W4A8Error(`tensor "${t.name}" has an invalid dimension ${d}`);
    return n;
  });
}

export function tensorElementCount(t: TensorProto): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

/** Bytes the tensor's data occupies in raw_data form, or undefined for STRING and unknown types. */
export function tensorByteSize(t: TensorProto): number | undefined {
  return byteSizeOf(t.dataType, tensorElementCount(t));
}

/** True when the data sits in the typed repeated fields (float_data, int32_data, ...), not raw_data. */
function hasTypedData(t: TensorProto): boolean {
  return (
    t.floatData.length > 0 ||
    t.int32Data.length > 0 ||
    t.int64Data.length > 0 ||
    t.doubleData.length > 0 ||
    t.uint64Data.length > 0
  );
}

// The typed fields are converted by the typed-array constructors (engine code, not JS loops).
function typedFieldBytes(t: TensorProto): Uint8Array {
  const asBytes = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  switch (t.dataType) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      return asBytes(new Float32Array(t.floatData));
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return asBytes(new Float64Array(t.doubleData));
    case DataType.INT64:
      return asBytes(BigInt64Array.from(t.int64Data));
    case DataType.UINT64:
    case DataType.UINT32:
      return t.dataType === DataType.UINT64 ? asBytes(BigUint64Array.from(t.uint64Data)) : asBytes(Uint32Array.from(t.uint64Data, Number));
    case DataType.INT32:
      return asBytes(Int32Array.from(t.int32Data));
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return asBytes(Uint16Array.from(t.int32Data));
    default:
      // 8-bit types hold one element per int32; 4-bit and 2-bit types one packed byte per int32.
      return Uint8Array.from(t.int32Data);
  }
}

/**
 * The tensor's data as raw little-endian bytes, any type but STRING. External data is read
 * from its side file now (only this tensor's range). The result may be a view: do not modify it.
 */
export function tensorRawBytes(model: TensorSource, t: TensorProto): Uint8Array {
  if (t.dataType === DataType.STRING) throw new W4A8Error(`tensor "${t.name}" holds strings; it has no raw bytes`);
  const expected = tensorByteSize(t);
  let bytes: Uint8Array;
  if (isExternal(t)) bytes = readExternalBytes(model.dir, t, expected);
  else if (t.rawData.length > 0 || !hasTypedData(t)) bytes = t.rawData;
  else bytes = typedFieldBytes(t);
  if (expected !== undefined && bytes.length !== expected) {
    throw new W4A8Error(
      `tensor "${t.name}" (${dataTypeName(t.dataType)} [${tensorDims(t).join(', ')}]) holds ${bytes.length} bytes of data, expected ${expected}`,
    );
  }
  return bytes;
}

/** A copy of `bytes` whose start is aligned for `align`-byte elements (raw_data views often are not). */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  // new Uint8Array(view) copies; Buffer#slice would return another unaligned view.
  return bytes.byteOffset % align === 0 ? bytes : new Uint8Array(bytes);
}

/** The tensor's values as fp32 (copies; fp16/bf16 widen natively; double narrows). */
export function tensorToFloat32(model: TensorSource, t: TensorProto): Float32Array {
  const raw = tensorRawBytes(model, t);
  const count = tensorElementCount(t);
  switch (t.dataType) {
    case DataType.FLOAT: {
      const src = aligned(raw, 4);
      return new Float32Array(src.buffer, src.byteOffset, count).slice();
    }
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const src = aligned(raw, 2);
      const halves = new Uint16Array(src.buffer, src.byteOffset, count);
      return halvesToFloat32(halves, t.dataType === DataType.FLOAT16 ? 'float16' : 'bfloat16');
    }
    case DataType.DOUBLE: {
      const src = aligned(raw, 8);
      return new Float32Array(new Float64Array(src.buffer, src.byteOffset, count));
    }
    default:
      throw new W4A8Error(`tensor "${t.name}" is ${dataTypeName(t.dataType)}; only FLOAT, FLOAT16, BFLOAT16 and DOUBLE convert to float32`);
  }
}

/** A tensor with the given raw data (copied). The byte size must match dims and type. */
export function makeTensor(name: string, dataType: DataType, dims: number[], data: Uint8Array | ArrayBufferView): TensorProto {
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`makeTensor: dims of "${name}" must be non-negative integers, got [${dims.join(', ')}]`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = byteSizeOf(dataType, count);
  if (expected === undefined) throw new RangeError(`makeTensor: "${name}" has type ${dataTypeName(dataType)}, which has no raw form`);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length !== expected) {
    throw new RangeError(
      `makeTensor: "${name}" is ${dataTypeName(dataType)} [${dims.join(', ')}] and needs ${expected} bytes, but ${bytes.length} were given`,
    );
  }
  return create(TensorProtoSchema, { name, dataType, dims: dims.map(BigInt), rawData: new Uint8Array(bytes) });
}

/**
 * A tensor whose bytes already lie in a side file beside the model (`location`, relative to the
 * model's folder, at `offset`), for writers that stream weights out one tensor at a time.
 */
export function makeExternalTensor(name: string, dataType: DataType, dims: number[], location: string, offset: number, length: number): TensorProto {
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`makeExternalTensor: dims of "${name}" must be non-negative integers, got [${dims.join(', ')}]`);
  }
  for (const [what, v] of [['offset', offset], ['length', length]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`makeExternalTensor: ${what} of "${name}" must be a non-negative integer, got ${v}`);
  }
  return create(TensorProtoSchema, {
    name,
    dataType,
    dims: dims.map(BigInt),
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  });
}

/** A FLOAT, FLOAT16 or BFLOAT16 tensor from fp32 values (narrowed natively, round to nearest even). */
export function makeFloatTensorLike(name: string, dataType: DataType, dims: number[], values: Float32Array): TensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new RangeError(`makeFloatTensorLike: "${name}" has dims [${dims.join(', ')}] (${count} values), but ${values.length} values were given`);
  }
  switch (dataType) {
    case DataType.FLOAT:
      return makeTensor(name, dataType, dims, values);
    case DataType.FLOAT16:
    case DataType.BFLOAT16: {
      const halves = float32ToHalves(values, dataType === DataType.FLOAT16 ? 'float16' : 'bfloat16');
      return create(TensorProtoSchema, { name, dataType, dims: dims.map(BigInt), rawData: new Uint8Array(halves.buffer) });
    }
    default:
      throw new RangeError(`makeFloatTensorLike: "${name}" must be FLOAT, FLOAT16 or BFLOAT16, got ${dataTypeName(dataType)}`);
  }
}

/**
 * Replaces the main graph's initializer of the same name (appends it when there is none). A model
 * with a tensor sink (a streamed write, onnx/side_writer.ts) hands the tensor's bytes over first.
 */
export function replaceInitializer(model: { proto: ModelProto; tensorSink?: (t: TensorProto) => TensorProto }, t: TensorProto): void {
  const graph = model.proto.graph;
  if (!graph) throw new W4A8Error('the model has no graph');
  if (model.tensorSink) t = model.tensorSink(t);
  const i = graph.initializer.findIndex((x) => x.name === t.name);
  if (i >= 0) graph.initializer[i] = t;
  else graph.initializer.push(t);
}
