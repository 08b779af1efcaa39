// The importers' side file: weights (fp32, or narrowed to fp16) go to the (staged) side file as soon as they are made,
// each at the next aligned offset, and the graph keeps external references, so an import holds
// about one tensor at a time however large the model. A weight that must be transposed is
// written in blocks of source rows, so its transpose never exists whole in memory either.
import * as fs from 'node:fs';
import type { TensorProto } from 'onnx-buf';
import { DataType, makeExternalTensor } from '../onnx/tensor';
import { EXTERNAL_ALIGNMENT, writeAll } from '../onnx/external_data';
import { transposeMatrix } from '../native/tensor_layout';
import { float32ToHalves } from '../native/tensor_codecs';

/** Values per transposed block (64 MiB of fp32). */
const BLOCK_VALUES = 16 * 2 ** 20;

export class ImportSideFile {
  private fd: number | undefined;
  private pos = 0;

  constructor(
    stagedPath: string,
    /** The side file's name as the model references it. */
    readonly location: string,
    /** Values per transposed block (tests lower it). */
    private readonly blockValues = BLOCK_VALUES,
    /** FLOAT16 narrows each tensor as it is written (natively, round to nearest even). */
    readonly dataType: DataType.FLOAT | DataType.FLOAT16 = DataType.FLOAT,
  ) {
    this.fd = fs.openSync(stagedPath, 'w');
  }

  private get elementBytes(): number {
    return this.dataType === DataType.FLOAT16 ? 2 : 4;
  }

  private bytesOf(values: Float32Array): Uint8Array {
    const v = this.dataType === DataType.FLOAT16 ? float32ToHalves(values, 'float16') : values;
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  private next(length: number): number {
    const at = Math.ceil(this.pos / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    this.pos = at + length;
    return at;
  }

  private get descriptor(): number {
    if (this.fd === undefined) throw new Error('the import side file is already closed');
    return this.fd;
  }

  /** Writes `data` as the tensor `name` [dims] and returns its external reference. */
  write(name: string, dims: number[], data: Float32Array): TensorProto {
    const bytes = this.bytesOf(data);
    const at = this.next(bytes.length);
    writeAll(this.descriptor, bytes, at);
    return makeExternalTensor(name, this.dataType, dims, this.location, at, bytes.length);
  }

  /**
   * Writes the transpose of `src` ([rows, cols] -> [cols, rows]) as the tensor `name`: blocks of
   * source rows are transposed natively and each of their rows lands at its place in the file.
   */
  async writeTransposed(name: string, src: Float32Array, rows: number, cols: number): Promise<TensorProto> {
    const e = this.elementBytes;
    const at = this.next(rows * cols * e);
    const blockRows = Math.max(1, Math.min(rows, Math.floor(this.blockValues / Math.max(cols, 1))));
    for (let r0 = 0; r0 < rows; r0 += blockRows) {
      const r = Math.min(blockRows, rows - r0);
      const t = await transposeMatrix(src.subarray(r0 * cols, (r0 + r) * cols), r, cols); // [cols, r]
      const bytes = this.bytesOf(t);
      if (r === rows) writeAll(this.descriptor, bytes, at);
      else for (let c = 0; c < cols; c++) writeAll(this.descriptor, bytes.subarray(c * r * e, (c + 1) * r * e), at + (c * rows + r0) * e);
    }
    return makeExternalTensor(name, this.dataType, [cols, rows], this.location, at, rows * cols * e);
  }

  /** fsyncs and closes. */
  finish(): void {
    fs.fsyncSync(this.descriptor);
    this.close();
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
