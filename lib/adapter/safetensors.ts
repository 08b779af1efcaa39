// A strict reader of the safetensors format (huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?},
// then the tensor bytes. Every check is made before a tensor is handed out: header length within
// the file, offsets inside the data and non-overlapping, byte counts matching the shape and dtype.
// F16/BF16 widen to fp32 through the addon's codecs; no element is touched here.
import { halvesToFloat32 } from '../native/tensor_codecs';
import { W4A8Error } from '../util/errors';
import { readRegularFile } from '../util/regular_file';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** Adapter files are small; a header past this is not one we wrote or PEFT wrote. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Widened to fp32 (a copy: never a view of the file's buffer). */
  values: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

function fail(file: string, what: string): never {
  throw new W4A8Error(`${file} is not a valid safetensors file: ${what}`);
}

/** Parses `bytes` (the whole file); `file` names it in messages. */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  if (bytes.length < 8) fail(file, `${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen < 2n || headerLen > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    fail(file, `header length ${headerLen} is outside 2..${Math.min(MAX_HEADER_BYTES, bytes.length - 8)} (the file has ${bytes.length} bytes; truncated?)`);
  }
  const hl = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hl)));
  } catch (e) {
    fail(file, `header is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(file, 'header is not a JSON object');
  const dataStart = 8 + hl;
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  const metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) fail(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(file, `entry "${name}" is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in BYTES)) fail(file, `tensor "${name}" has dtype ${JSON.stringify(e.dtype)}; expected F32, F16 or BF16`);
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(file, `tensor "${name}" has shape ${JSON.stringify(e.shape)}; expected an array of non-negative integers`);
    const shape = e.shape as number[];
    const o = e.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || !o.every((x) => Number.isSafeInteger(x) && x >= 0) || o[0] > o[1] || o[1] > dataLen) {
      fail(file, `tensor "${name}" has data_offsets ${JSON.stringify(o)}; expected [begin, end] within the ${dataLen} data bytes (truncated?)`);
    }
    const [begin, end] = o as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (count * BYTES[dtype] !== end - begin) fail(file, `tensor "${name}" has shape [${shape.join(', ')}] ${dtype} (${count * BYTES[dtype]} bytes) but ${end - begin} data bytes`);
    spans.push([begin, end, name]);
    // A copy with its own ArrayBuffer (Buffer#slice would be a view into the whole file).
    const raw = Uint8Array.prototype.slice.call(bytes, dataStart + begin, dataStart + end);
    const values = dtype === 'F32'
      ? new Float32Array(raw.buffer, 0, count)
      : halvesToFloat32(new Uint16Array(raw.buffer, 0, count), dtype === 'F16' ? 'float16' : 'bfloat16');
    tensors.set(name, { name, dtype, shape, values });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(file, `tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap`);
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): SafetensorsFile {
  return parseSafetensors(readRegularFile(file, 'adapter weights'), file);
}
