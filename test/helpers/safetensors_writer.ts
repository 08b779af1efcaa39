// Writes safetensors files the way huggingface/safetensors does (8-byte little-endian header
// length, JSON header padded with spaces to 8 bytes, tensors back to back), for adapter tests.
import * as fs from 'node:fs';
import { float32ToHalves } from '../../lib/native/tensor_codecs';

export interface TensorToWrite {
  shape: number[];
  values: Float32Array;
  dtype?: 'F32' | 'F16' | 'BF16';
}

export function safetensorsBytes(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const blobs: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const dtype = t.dtype ?? 'F32';
    const bytes = dtype === 'F32'
      ? Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength)
      : Buffer.from(float32ToHalves(t.values, dtype === 'F16' ? 'float16' : 'bfloat16').buffer);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), ...blobs]);
}

/** A PEFT-style adapter folder: adapter_model.safetensors + adapter_config.json. */
export function writeAdapterDir(dir: string, tensors: Record<string, TensorToWrite>, config: Record<string, unknown>): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${dir}/adapter_model.safetensors`, safetensorsBytes(tensors));
  fs.writeFileSync(`${dir}/adapter_config.json`, JSON.stringify(config));
  return dir;
}
