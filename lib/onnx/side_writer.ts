// A side file written as tensors are produced: each tensor's bytes go to the (staged) file at
// the next aligned offset and the tensor becomes an external reference to them, so a writer
// holds one tensor at a time however large the model. saveModel continues the same file
// (tensors already in it are left as they are) and appends the rest.
import * as fs from 'node:fs';
import { TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { DataType } from './dtype';
import { EXTERNAL_ALIGNMENT, writeAll } from './external_data';
import { tensorByteSize } from './tensor';

export class SideFileWriter {
  private fd: number | undefined;
  private pos = 0;
  private readonly written = new WeakSet<TensorProto>();

  /**
   * @param stagedPath where the bytes go now (the output set's staging copy)
   * @param location the side file's name as the model will reference it (beside the model)
   * @param minBytes smaller tensors stay inline (saveModel's inline threshold)
   */
  constructor(
    readonly stagedPath: string,
    readonly location: string,
    readonly minBytes: number,
  ) {
    this.fd = fs.openSync(stagedPath, 'w');
  }

  /** The next free offset (aligned for the next tensor). */
  get position(): number {
    return this.pos;
  }

  /** The open descriptor; saveModel appends through it. */
  get descriptor(): number {
    if (this.fd === undefined) throw new Error(`side file ${this.stagedPath} is already closed`);
    return this.fd;
  }

  /** Reserves `length` bytes at the next aligned offset and returns that offset. */
  reserve(length: number): number {
    const at = Math.ceil(this.pos / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    this.pos = at + length;
    return at;
  }

  /** Records that the caller wrote bytes up to `end`. */
  advanceTo(end: number): void {
    this.pos = Math.max(this.pos, end);
  }

  /** True when `t` already points into this file. */
  owns(t: TensorProto): boolean {
    return this.written.has(t);
  }

  /** Marks a tensor whose bytes the caller placed in this file (saveModel's own appends). */
  adopt(t: TensorProto): void {
    this.written.add(t);
  }

  /**
   * Moves an inline tensor's raw bytes into the file and turns it into an external reference
   * (the same object, changed in place; its rawData is dropped). Small, typed-field, STRING and
   * already external tensors are returned unchanged.
   */
  take(t: TensorProto): TensorProto {
    if (this.written.has(t) || t.dataLocation === TensorProto_DataLocation.EXTERNAL || t.dataType === DataType.STRING) return t;
    const bytes = t.rawData;
    if (bytes.length < this.minBytes || bytes.length !== tensorByteSize(t)) return t;
    this.writeAt(t, this.reserve(bytes.length));
    return t;
  }

  /** Writes an inline tensor's raw bytes at `at` and turns it into an external reference to them. */
  private writeAt(t: TensorProto, at: number): void {
    const bytes = t.rawData;
    writeAll(this.descriptor, bytes, at);
    delete (t as Partial<TensorProto>).rawData;
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.externalData = [
      { $typeName: 'onnx.StringStringEntryProto', key: 'location', value: this.location },
      { $typeName: 'onnx.StringStringEntryProto', key: 'offset', value: String(at) },
      { $typeName: 'onnx.StringStringEntryProto', key: 'length', value: String(bytes.length) },
    ];
    this.written.add(t);
  }

  /**
   * Writes inline tensors back to back (the first at an aligned offset, the others right after it,
   * no padding between), so that one external reference can later span them all: the arrays of
   * layers that fuse_decoder.ts merges into one node, concatenated without copying. Each tensor
   * becomes an external reference to its own part. Returns false, writing nothing, when one is not
   * plain raw bytes or together they are below the inline threshold.
   */
  takeRun(ts: readonly TensorProto[]): boolean {
    if (ts.some((t) => this.written.has(t) || t.dataLocation === TensorProto_DataLocation.EXTERNAL || t.dataType === DataType.STRING || t.rawData.length !== tensorByteSize(t))) return false;
    const total = ts.reduce((s, t) => s + t.rawData.length, 0);
    if (total < this.minBytes) return false;
    let at = this.reserve(total);
    for (const t of ts) {
      const length = t.rawData.length;
      this.writeAt(t, at);
      at += length;
    }
    return true;
  }

  /** fsyncs and closes the file (once). */
  finish(): void {
    if (this.fd === undefined) return;
    fs.fsyncSync(this.fd);
    this.close();
  }

  /** Closes without syncing (on failure; the output set removes the staged file). */
  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
