// Column slices of a 2-D float weight too large for one buffer (over 2 GiB as fp32): all K rows
// of the output channels [n0, n1), read with positioned reads from the side file, so a quantizer
// holds one slice at a time. A MatMul weight [K, N] takes one read per row (the slice is strided
// in the file); a Gemm transB weight [N, K] stores the slice contiguously (one read, then a native
// transpose). fp16/bf16 widen natively; the result is always fp32 [K][n1 - n0].
import * as fs from 'node:fs';
import type { TensorProto } from 'onnx-buf';
import { W4A8Error } from '../util/errors';
import { readExactly } from '../util/regular_file';
import { halvesToFloat32 } from '../native/tensor_codecs';
import { transposeMatrix } from '../native/tensor_layout';
import { DataType, dataTypeName } from './dtype';
import { isExternal, openExternalRange } from './external_data';
import { tensorByteSize, tensorDims, tensorRawBytes, type TensorSource } from './tensor';

const ELEMENT_BYTES: Partial<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.FLOAT16]: 2,
  [DataType.BFLOAT16]: 2,
  [DataType.DOUBLE]: 8,
};

/** Where the bytes come from: a side file (fd) or, for inline tensors, their raw data in memory. */
interface ByteSource {
  read(into: Uint8Array, at: number, count: number, position: number): void;
  close(): void;
}

function fileSource(dir: string, t: TensorProto): ByteSource {
  const r = openExternalRange(dir, t, tensorByteSize(t));
  let fd: number | undefined = r.fd;
  return {
    read: (into, at, count, position) => {
      if (fd === undefined) throw new Error(`weight slices of "${t.name}" are closed`);
      readExactly(fd, into, at, count, r.offset + position, `${r.file} (tensor "${t.name}")`);
    },
    close: () => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    },
  };
}

function memorySource(source: TensorSource, t: TensorProto): ByteSource {
  const raw = tensorRawBytes(source, t);
  return {
    read: (into, at, count, position) => into.set(raw.subarray(position, position + count), at),
    close: () => undefined,
  };
}

export class WeightSlices {
  private readonly element: number;
  private readonly source: ByteSource;

  /**
   * @param k rows of the MatMul view [K, N]
   * @param n output channels
   * @param transB the tensor is stored [N, K] (a Gemm with transB = 1)
   */
  constructor(model: TensorSource, readonly tensor: TensorProto, readonly k: number, readonly n: number, readonly transB: boolean) {
    const element = ELEMENT_BYTES[tensor.dataType];
    if (element === undefined) throw new W4A8Error(`weight "${tensor.name}" is ${dataTypeName(tensor.dataType)}; only FLOAT, FLOAT16, BFLOAT16 and DOUBLE weights are quantized`);
    const dims = tensorDims(tensor);
    const want = transB ? [n, k] : [k, n];
    if (dims.length !== 2 || dims[0] !== want[0] || dims[1] !== want[1]) {
      throw new W4A8Error(`weight "${tensor.name}" has dims [${dims.join(', ')}], expected [${want.join(', ')}]`);
    }
    this.element = element;
    this.source = isExternal(tensor) ? fileSource(model.dir, tensor) : memorySource(model, tensor);
  }

  /** fp32 [K][n1 - n0]: every row's values of output channels n0..n1-1. */
  async read(n0: number, n1: number): Promise<Float32Array> {
    if (!Number.isSafeInteger(n0) || !Number.isSafeInteger(n1) || n0 < 0 || n1 > this.n || n1 <= n0) {
      throw new RangeError(`WeightSlices.read: expected 0 <= n0 < n1 <= ${this.n}, got ${n0}..${n1}`);
    }
    const { k, n, element: e } = this;
    const cols = n1 - n0;
    const raw = new Uint8Array(k * cols * e);
    if (this.transB) this.source.read(raw, 0, raw.length, n0 * k * e);
    else for (let row = 0; row < k; row++) this.source.read(raw, row * cols * e, cols * e, (row * n + n0) * e);
    const values = this.toFloat32(raw);
    return this.transB ? transposeMatrix(values, cols, k) : values;
  }

  private toFloat32(raw: Uint8Array): Float32Array {
    switch (this.tensor.dataType) {
      case DataType.FLOAT:
        return new Float32Array(raw.buffer, 0, raw.length / 4);
      case DataType.DOUBLE:
        return new Float32Array(new Float64Array(raw.buffer, 0, raw.length / 8));
      default:
        return halvesToFloat32(new Uint16Array(raw.buffer, 0, raw.length / 2), this.tensor.dataType === DataType.FLOAT16 ? 'float16' : 'bfloat16');
    }
  }

  close(): void {
    this.source.close();
  }
}
